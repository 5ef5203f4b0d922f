#include "live_messages.hpp"

namespace talkserve::pipeline {

using net::ApiError;
using nlohmann::json;

namespace {

ProtocolError policy(std::string message, std::string param = {},
                     std::string code = "protocol_error") {
  return ProtocolError{kClosePolicy,
                       ApiError(400, std::move(message), std::move(param), std::move(code))};
}

SessionStart parse_session_start(const json& msg) {
  SessionStart start;
  if (auto it = msg.find("session_id"); it != msg.end() && !it->is_null()) {
    if (!it->is_string()) throw policy("session_id: must be a string", "session_id");
    start.session_id = it->get<std::string>();
  }
  if (auto it = msg.find("voice"); it != msg.end() && !it->is_null()) {
    if (!it->is_string()) throw policy("voice: must be a string", "voice");
    start.voice = it->get<std::string>();
  }
  if (auto it = msg.find("video"); it != msg.end() && !it->is_null()) {
    if (!it->is_boolean()) throw policy("video: must be true or false", "video");
    start.video = it->get<bool>();
  }
  return start;
}

}  // namespace

ClientMessage parse_client_message(std::string_view frame, bool started) {
  json msg;
  try {
    msg = json::parse(frame);
  } catch (const json::exception& e) {
    throw ProtocolError{kCloseInvalidData, ApiError(400, std::string("frame is not valid JSON: ") + e.what(),
                                                    {}, "invalid_json")};
  }
  if (!msg.is_object()) {
    throw ProtocolError{kCloseInvalidData, ApiError(400, "frame must be a JSON object", {}, "invalid_json")};
  }
  auto type_it = msg.find("type");
  if (type_it == msg.end() || !type_it->is_string()) throw policy("type: a string is required", "type");
  const std::string type = type_it->get<std::string>();
  if (type == "session.start") {
    if (started) throw policy("session.start: the session has already started");
    return parse_session_start(msg);
  }
  if (type != "input.text" && type != "input.audio.commit" && type != "response.cancel") {
    throw policy("type: unknown message type '" + type + "'", "type", "unknown_type");
  }
  if (!started) throw policy("'" + type + "' before session.start", "type");
  if (type == "input.text") {
    auto it = msg.find("text");
    if (it == msg.end() || !it->is_string()) throw policy("text: a string is required", "text");
    std::string text = it->get<std::string>();
    if (text.find_first_not_of(" \t\r\n") == std::string::npos) throw policy("text: must not be empty", "text");
    if (text.size() > kMaxTextBytes) throw policy("text: longer than 8192 bytes", "text");
    return InputText{std::move(text)};
  }
  if (type == "input.audio.commit") return AudioCommit{};
  return ResponseCancel{};
}

std::vector<float> decode_pcm16_frame(std::string_view frame) {
  if (frame.size() % 2 != 0) {
    throw ProtocolError{kCloseInvalidData,
                        ApiError(400, "audio frames are PCM16: an even number of bytes", {}, "invalid_audio")};
  }
  const std::size_t n = frame.size() / 2;
  std::vector<float> samples(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto lo = static_cast<std::uint8_t>(frame[2 * i]);
    const auto hi = static_cast<std::uint8_t>(frame[2 * i + 1]);
    samples[i] = static_cast<std::int16_t>(lo | (hi << 8)) / 32768.0f;
  }
  return samples;
}

json error_event(const ApiError& e, std::optional<std::uint32_t> response_id) {
  json err{{"message", e.what()}, {"type", e.type}, {"code", e.code.empty() ? json(nullptr) : json(e.code)}};
  if (!e.param.empty()) err["param"] = e.param;
  json out{{"type", "error"}, {"error", std::move(err)}};
  if (response_id) out["response_id"] = *response_id;
  return out;
}

std::string event_text(const json& event) {
  return event.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace talkserve::pipeline
