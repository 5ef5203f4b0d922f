#pragma once
// The services (resident-model stages) this build of talkserve offers, per configuration.

#include <memory>
#include <vector>

#include "talkserve/app/config.hpp"
#include "talkserve/app/service.hpp"

namespace talkserve::obs {
class MetricsRegistry;
}

namespace talkserve::app {

std::vector<std::unique_ptr<Service>> make_services(const AppConfig& config,
                                                    obs::MetricsRegistry& metrics);

}  // namespace talkserve::app
