#pragma once
// A request the server refuses, in OpenAI's error shape: HTTP status, error type and code,
// and the offending parameter. Services throw it while parsing and validating; the handler
// turns it into a response in one place (error_response).
//
// Thread-safety: plain value type.

#include <stdexcept>
#include <string>

#include "talkserve/net/exchange.hpp"

namespace talkserve::net {

struct ApiError : std::runtime_error {
  ApiError(int status, std::string message, std::string param = {}, std::string code = {},
           std::string type = {})
      : std::runtime_error(std::move(message)),
        status(status),
        param(std::move(param)),
        code(std::move(code)),
        type(type.empty() ? default_type(status) : std::move(type)) {}
  static std::string default_type(int status) {
    if (status == 401) return "authentication_error";
    if (status == 404) return "not_found_error";
    if (status == 429) return "rate_limit_error";
    if (status >= 500) return "server_error";
    return "invalid_request_error";
  }
  int status;
  std::string param;
  std::string code;
  std::string type;
};

// {"error":{"message","type","param","code"}}
std::string error_json(const ApiError& e);

// The JSON error response; 429 and 503 carry Retry-After.
Response error_response(const ApiError& e, unsigned version);

}  // namespace talkserve::net
