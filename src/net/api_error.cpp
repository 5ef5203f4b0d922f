#include "talkserve/net/api_error.hpp"

#include <nlohmann/json.hpp>

namespace talkserve::net {

std::string error_json(const ApiError& e) {
  using nlohmann::json;
  json err = {{"message", e.what()},
              {"type", e.type},
              {"param", e.param.empty() ? json(nullptr) : json(e.param)},
              {"code", e.code.empty() ? json(nullptr) : json(e.code)}};
  // Messages may quote client bytes that are not valid UTF-8: replace, never throw.
  return json{{"error", err}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

Response error_response(const ApiError& e, unsigned version) {
  auto res = make_json(static_cast<http::status>(e.status), error_json(e), version);
  if (e.status == 503 || e.status == 429) res.set(http::field::retry_after, "1");
  return res;
}

}  // namespace talkserve::net
