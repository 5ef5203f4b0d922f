#pragma once
// /healthz, /readyz and /metrics: no authentication, never queued behind model work.

#include <functional>
#include <optional>
#include <string>

namespace talkserve::net {
class Router;
}
namespace talkserve::obs {
class MetricsRegistry;
}

namespace talkserve::app {

struct SystemState {
  std::function<bool()> ready;     // every configured model loaded and not draining
  std::function<bool()> draining;
  obs::MetricsRegistry* metrics = nullptr;
  // Why a resource limit ([gpu]) keeps the server from taking traffic; nullopt when none does.
  std::function<std::optional<std::string>()> resource_limit;
};

void register_system_routes(net::Router& router, SystemState state);

}  // namespace talkserve::app
