// The live stream's client messages (src/pipeline/live_messages.cpp), as GET /v1/stream
// handles each WebSocket frame: the first byte chooses text (JSON control message; bit 0) or
// binary (PCM16 audio), and whether session.start was accepted before (bit 1); the rest is the
// frame. Fails on a sanitizer report, an exception other than ProtocolError, a close code
// outside 1007/1008, a message that breaks a documented limit, or an error event that cannot be
// serialised for the client (the session sends one for every ProtocolError).

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "pipeline/live_messages.hpp"

namespace {

using namespace talkserve::pipeline;

[[noreturn]] void fail(const char* why) {
  std::fprintf(stderr, "fuzz_live_messages: %s\n", why);
  std::abort();
}

void check_error_event(const ProtocolError& e) {
  if (e.code != kCloseInvalidData && e.code != kClosePolicy) fail("close code is not 1007 or 1008");
  const std::string text = event_text(error_event(e.error));
  // What a client's JSON.parse sees: valid JSON with the error shape.
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || j.value("type", "") != "error" || !j["error"].contains("message")) {
    fail("error event is not valid JSON of the error shape");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const bool binary = (data[0] & 1) != 0;
  const bool started = (data[0] & 2) != 0;
  const std::string frame(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    if (binary) {
      const auto samples = decode_pcm16_frame(frame);
      if (samples.size() * 2 != frame.size()) fail("sample count does not match the frame");
      for (float s : samples) {
        if (!(s >= -1.0f && s < 1.0f)) fail("sample outside [-1, 1)");
      }
      return 0;
    }
    const ClientMessage msg = parse_client_message(frame, started);
    if (const auto* start = std::get_if<SessionStart>(&msg)) {
      if (started) fail("a second session.start was accepted");
      (void)start;
    } else {
      if (!started) fail("a message before session.start was accepted");
      if (const auto* text = std::get_if<InputText>(&msg)) {
        if (text->text.size() > kMaxTextBytes) fail("input.text longer than the limit");
        if (text->text.find_first_not_of(" \t\r\n") == std::string::npos) fail("blank input.text");
      }
    }
  } catch (const ProtocolError& e) {
    check_error_event(e);
  }
  return 0;
}
