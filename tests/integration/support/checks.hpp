#pragma once
// Assertions and helpers shared by the integration tests.

#include <string>

#include "support/http_client.hpp"

namespace talkserve::itest {

// `res` is an error in the OpenAI shape {"error":{"message","type","param","code"}} with this
// status; `type` and `message_mentions` are checked when not empty.
void check_error(const HttpResponse& res, unsigned status, const std::string& type = {},
                 const std::string& message_mentions = {});
// The same, checking only that the message mentions `message_mentions`.
inline void check_error_mentions(const HttpResponse& res, unsigned status,
                                 const std::string& message_mentions = {}) {
  check_error(res, status, {}, message_mentions);
}

// Runs a shell command (ffmpeg, ffprobe) and returns its standard output.
std::string run_command(const std::string& command);

}  // namespace talkserve::itest
