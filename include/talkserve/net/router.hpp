#pragma once
// Maps (method, path) to a route. Patterns are literal segments and `{name}` parameters,
// e.g. "/v1/clips/{id}". A path that matches no pattern is 404; a path that matches a pattern
// but not with this method is 405 (with the allowed methods for the Allow header).
//
// Thread-safety: add() during start-up only; match() is safe concurrently afterwards.

#include <boost/beast/http/verb.hpp>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "talkserve/net/exchange.hpp"

namespace talkserve::net {

struct RouteOptions {
  std::string name;                    // metrics label; defaults to the pattern
  std::optional<std::size_t> body_limit;  // overrides HttpConfig::max_body_bytes
  bool requires_auth = true;           // false for /healthz, /readyz, /metrics, static files
};

struct Route {
  boost::beast::http::verb method;
  std::string pattern;
  RouteOptions options;
  HttpHandler handler;              // for ordinary HTTP routes
  WebSocketHandlerFactory websocket;  // set for WebSocket upgrade routes (GET)
};

struct RouteMatch {
  enum class Kind { found, not_found, method_not_allowed } kind = Kind::not_found;
  const Route* route = nullptr;
  std::map<std::string, std::string, std::less<>> params;
  std::string allow;  // for method_not_allowed: "GET, POST"
};

class Router {
 public:
  void add(boost::beast::http::verb method, std::string pattern, HttpHandler handler,
           RouteOptions options = {});
  void add_websocket(std::string pattern, WebSocketHandlerFactory factory,
                     RouteOptions options = {});
  // Serves files under `root` for GET/HEAD of any path no route claims (index.html for "/").
  void set_static_root(std::string root) { static_root_ = std::move(root); }
  const std::string& static_root() const { return static_root_; }

  RouteMatch match(boost::beast::http::verb method, std::string_view path) const;

 private:
  struct Pattern {
    std::vector<std::string> segments;  // "{x}" marks a parameter
  };
  static Pattern parse(std::string_view pattern);
  static bool match_pattern(const Pattern& p, const std::vector<std::string_view>& segs,
                            std::map<std::string, std::string, std::less<>>* params);
  std::vector<std::pair<Pattern, std::unique_ptr<Route>>> routes_;
  std::string static_root_;
};

}  // namespace talkserve::net
