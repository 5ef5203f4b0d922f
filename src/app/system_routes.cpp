#include "system_routes.hpp"

#include <nlohmann/json.hpp>

#include "talkserve/net/router.hpp"
#include "talkserve/obs/metrics.hpp"

namespace talkserve::app {

namespace http = boost::beast::http;

void register_system_routes(net::Router& router, SystemState state) {
  net::RouteOptions open;
  open.requires_auth = false;

  open.name = "/healthz";
  router.add(
      http::verb::get, "/healthz",
      [](net::HttpExchange& ex) -> boost::asio::awaitable<void> {
        co_await ex.respond(net::make_json(http::status::ok, R"({"status":"ok"})",
                                           ex.request().version()));
      },
      open);

  open.name = "/readyz";
  router.add(
      http::verb::get, "/readyz",
      [state](net::HttpExchange& ex) -> boost::asio::awaitable<void> {
        bool draining = state.draining();
        bool ready = state.ready();
        nlohmann::json body{{"status", ready ? "ready" : (draining ? "draining" : "loading")}};
        // Loaded and serving, but a GPU or memory limit is exceeded: the load balancer should
        // send new work elsewhere until the monitor sees it recover; the reason says which.
        if (ready && state.resource_limit) {
          if (auto reason = state.resource_limit()) {
            ready = false;
            body = {{"status", "resource_limit"}, {"reason", *reason}};
          }
        }
        auto res = net::make_json(ready ? http::status::ok : http::status::service_unavailable,
                                  body.dump(), ex.request().version());
        if (!ready) res.set(http::field::retry_after, "1");
        co_await ex.respond(std::move(res));
      },
      open);

  open.name = "/metrics";
  router.add(
      http::verb::get, "/metrics",
      [state](net::HttpExchange& ex) -> boost::asio::awaitable<void> {
        net::Response res{http::status::ok, ex.request().version()};
        res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
        res.body() = state.metrics->render_prometheus();
        co_await ex.respond(std::move(res));
      },
      open);
}

}  // namespace talkserve::app
