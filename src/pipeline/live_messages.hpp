#pragma once
// The client side of the GET /v1/stream protocol (docs/protocol.md) as pure functions: JSON
// control messages parsed and validated into typed messages, PCM16 audio frames decoded, and
// the server's error events. Nothing here touches a session, a stage or a socket, so the live
// session's input validation is unit-tested and fuzzed on its own (fuzz/fuzz_live_messages.cpp).
//
// Thread-safety: pure functions.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "talkserve/net/api_error.hpp"

namespace talkserve::pipeline {

// WebSocket close codes (RFC 6455).
inline constexpr std::uint16_t kCloseGoingAway = 1001;
inline constexpr std::uint16_t kCloseInvalidData = 1007;
inline constexpr std::uint16_t kClosePolicy = 1008;

inline constexpr std::size_t kMaxTextBytes = 8192;  // input.text

// A protocol violation: the session answers with an error event and closes with `code`.
struct ProtocolError {
  std::uint16_t code;
  net::ApiError error;
};

struct SessionStart {
  std::string session_id;            // "" = a new session
  std::optional<std::string> voice;  // checked against the TTS backend by the session
  std::optional<bool> video;
};
struct InputText {
  std::string text;  // not blank, at most kMaxTextBytes
};
struct AudioCommit {};
struct ResponseCancel {};
using ClientMessage = std::variant<SessionStart, InputText, AudioCommit, ResponseCancel>;

// Parses one text frame. `started`: whether session.start was accepted earlier (every other
// message needs it; a second one is refused). Throws ProtocolError: 1007 for a frame that is
// not a JSON object, 1008 for an unknown type, a message out of order or a bad field.
ClientMessage parse_client_message(std::string_view frame, bool started);

// Decodes one binary frame of PCM16 little-endian mono samples to floats in [-1, 1). Throws
// ProtocolError 1007 for an odd number of bytes.
std::vector<float> decode_pcm16_frame(std::string_view frame);

// The error event {"type":"error","error":{message,type,code[,param]}[,"response_id"]}.
nlohmann::json error_event(const net::ApiError& e,
                           std::optional<std::uint32_t> response_id = std::nullopt);

// Serialises an event for a text frame. Messages may quote client bytes that are not valid
// UTF-8 (a JSON parse error cites the bytes it stopped at): those are replaced, never thrown.
std::string event_text(const nlohmann::json& event);

}  // namespace talkserve::pipeline
