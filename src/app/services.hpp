#pragma once
// The services (resident-model stages) this build of talkserve offers, per configuration.

#include <memory>
#include <vector>

#include "talkserve/app/config.hpp"
#include "talkserve/app/service.hpp"

namespace talkserve::obs {
class MetricsRegistry;
}
namespace talkserve::cache {
class RedisClient;
}

namespace talkserve::app {

// `redis`: the server's client of config.redis.url (null when it is empty or the build has no
// Redis tier), for the services that share state through it.
std::vector<std::unique_ptr<Service>> make_services(const AppConfig& config,
                                                    obs::MetricsRegistry& metrics,
                                                    std::shared_ptr<cache::RedisClient> redis);

}  // namespace talkserve::app
