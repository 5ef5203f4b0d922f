#include <nlohmann/json.hpp>

#include "talkserve/net/exchange.hpp"

namespace talkserve::net {

std::string error_body(std::string_view message, std::string_view type, std::string_view code) {
  nlohmann::json j;
  j["error"] = {{"message", std::string(message)},
                {"type", std::string(type)},
                {"code", code.empty() ? nlohmann::json(nullptr) : nlohmann::json(std::string(code))}};
  // Replace invalid UTF-8 that may come from client input echoed in a message.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Response make_json(http::status status, std::string body, unsigned version) {
  Response res{status, version};
  res.set(http::field::content_type, "application/json");
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

Response make_error(http::status status, std::string_view message, std::string_view type,
                    std::string_view code, unsigned version) {
  return make_json(status, error_body(message, type, code), version);
}

std::string sse_event(std::string_view data, std::string_view event) {
  std::string out;
  out.reserve(data.size() + event.size() + 16);
  if (!event.empty()) {
    out += "event: ";
    out += event;
    out += '\n';
  }
  // Each line of the payload becomes its own data: line (SSE framing).
  std::size_t start = 0;
  while (true) {
    auto nl = data.find('\n', start);
    out += "data: ";
    out += data.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
    out += '\n';
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  out += '\n';
  return out;
}

}  // namespace talkserve::net
