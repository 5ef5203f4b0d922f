#include "services.hpp"

namespace talkserve::app {

std::vector<std::unique_ptr<Service>> make_services(const AppConfig& config,
                                                    obs::MetricsRegistry& metrics) {
  std::vector<std::unique_ptr<Service>> out;
  (void)config;
  (void)metrics;
  return out;
}

}  // namespace talkserve::app
