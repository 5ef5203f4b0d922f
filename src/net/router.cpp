#include "talkserve/net/router.hpp"

#include <stdexcept>

namespace talkserve::net {

namespace {
std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    std::size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    out.push_back(path.substr(i, j - i));
    i = j;
  }
  return out;
}
}  // namespace

Router::Pattern Router::parse(std::string_view pattern) {
  if (pattern.empty() || pattern.front() != '/') {
    throw std::invalid_argument("route pattern must start with '/': " + std::string(pattern));
  }
  Pattern p;
  for (auto seg : split_path(pattern)) p.segments.emplace_back(seg);
  return p;
}

void Router::add(boost::beast::http::verb method, std::string pattern, HttpHandler handler,
                 RouteOptions options) {
  if (options.name.empty()) options.name = pattern;
  auto route = std::make_unique<Route>();
  route->method = method;
  route->pattern = pattern;
  route->options = std::move(options);
  route->handler = std::move(handler);
  routes_.emplace_back(parse(pattern), std::move(route));
}

void Router::add_websocket(std::string pattern, WebSocketHandlerFactory factory,
                           RouteOptions options) {
  if (options.name.empty()) options.name = pattern;
  auto route = std::make_unique<Route>();
  route->method = boost::beast::http::verb::get;
  route->pattern = pattern;
  route->options = std::move(options);
  route->websocket = std::move(factory);
  routes_.emplace_back(parse(pattern), std::move(route));
}

bool Router::match_pattern(const Pattern& p, const std::vector<std::string_view>& segs,
                           std::map<std::string, std::string, std::less<>>* params) {
  if (p.segments.size() != segs.size()) return false;
  for (std::size_t i = 0; i < segs.size(); ++i) {
    const auto& ps = p.segments[i];
    bool is_param = ps.size() > 2 && ps.front() == '{' && ps.back() == '}';
    if (is_param) {
      if (params) (*params)[ps.substr(1, ps.size() - 2)] = std::string(segs[i]);
    } else if (ps != segs[i]) {
      return false;
    }
  }
  return true;
}

RouteMatch Router::match(boost::beast::http::verb method, std::string_view path) const {
  RouteMatch result;
  auto q = path.find('?');
  if (q != std::string_view::npos) path = path.substr(0, q);
  auto segs = split_path(path);
  for (const auto& [pattern, route] : routes_) {
    if (!match_pattern(pattern, segs, nullptr)) continue;
    bool method_ok = route->method == method ||
                     (method == boost::beast::http::verb::head &&
                      route->method == boost::beast::http::verb::get && !route->websocket);
    if (method_ok) {
      result.kind = RouteMatch::Kind::found;
      result.route = route.get();
      result.params.clear();
      match_pattern(pattern, segs, &result.params);
      return result;
    }
    std::string name(boost::beast::http::to_string(route->method));
    if (result.allow.find(name) == std::string::npos) {
      if (!result.allow.empty()) result.allow += ", ";
      result.allow += name;
    }
    result.kind = RouteMatch::Kind::method_not_allowed;
  }
  return result;
}

}  // namespace talkserve::net
