// The live stream's client messages (pipeline/live_messages): the validation GET /v1/stream
// applies to every frame, and the error events it answers with.

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <string>
#include <variant>

#include "pipeline/live_messages.hpp"

namespace talkserve::pipeline {
namespace {

ProtocolError refusal(std::string_view frame, bool started) {
  try {
    parse_client_message(frame, started);
  } catch (const ProtocolError& e) {
    return e;
  }
  FAIL("accepted: " << frame);
  return {0, net::ApiError(0, "")};
}

}  // namespace

TEST_CASE("live control messages parse into typed messages", "[pipeline][live]") {
  auto start = std::get<SessionStart>(
      parse_client_message(R"({"type":"session.start","session_id":"s1","voice":"en","video":false})", false));
  CHECK(start.session_id == "s1");
  CHECK(start.voice == "en");
  CHECK(start.video == false);
  auto bare = std::get<SessionStart>(parse_client_message(R"({"type":"session.start","voice":null})", false));
  CHECK(bare.session_id.empty());
  CHECK_FALSE(bare.voice);
  CHECK_FALSE(bare.video);
  CHECK(std::get<InputText>(parse_client_message(R"({"type":"input.text","text":" hi "})", true)).text == " hi ");
  CHECK(std::holds_alternative<AudioCommit>(parse_client_message(R"({"type":"input.audio.commit"})", true)));
  CHECK(std::holds_alternative<ResponseCancel>(parse_client_message(R"({"type":"response.cancel"})", true)));
}

TEST_CASE("live control messages that break the protocol are refused with 1007 or 1008",
          "[pipeline][live]") {
  CHECK(refusal("{", false).code == kCloseInvalidData);
  CHECK(refusal("[1]", true).code == kCloseInvalidData);
  CHECK(refusal(R"({"type":1})", true).error.param == "type");
  auto unknown = refusal(R"({"type":"nope"})", true);
  CHECK(unknown.code == kClosePolicy);
  CHECK(unknown.error.code == "unknown_type");
  CHECK_THAT(refusal(R"({"type":"input.text","text":"x"})", false).error.what(),
             Catch::Contains("before session.start"));
  CHECK_THAT(refusal(R"({"type":"session.start"})", true).error.what(), Catch::Contains("already started"));
  CHECK(refusal(R"({"type":"session.start","video":"yes"})", false).error.param == "video");
  CHECK(refusal(R"({"type":"session.start","session_id":5})", false).error.param == "session_id");
  CHECK(refusal(R"({"type":"input.text","text":" \n\t"})", true).error.param == "text");
  const std::string long_text = R"({"type":"input.text","text":")" + std::string(kMaxTextBytes + 1, 'a') + "\"}";
  CHECK_THAT(refusal(long_text, true).error.what(), Catch::Contains("longer than 8192"));
}

TEST_CASE("an error event quoting a partial UTF-8 character still serialises", "[pipeline][live]") {
  // "é" is valid UTF-8 but not JSON; the parse error quotes its first byte alone. The session
  // used to serialise the error event strictly, which threw on the strand and ended the server.
  const ProtocolError e = refusal("\xc3\xa9", true);
  CHECK(e.code == kCloseInvalidData);
  const nlohmann::json event = error_event(e.error);
  CHECK_THROWS(event.dump());
  const std::string text = event_text(event);
  const auto parsed = nlohmann::json::parse(text);
  CHECK(parsed["type"] == "error");
  CHECK(parsed["error"]["code"] == "invalid_json");
  CHECK_THAT(parsed["error"]["message"].get<std::string>(), Catch::Contains("\xef\xbf\xbd"));  // U+FFFD
}

TEST_CASE("PCM16 frames decode little-endian and odd lengths are refused", "[pipeline][live]") {
  const std::string frame("\x00\x00\xff\x7f\x00\x80\xff\xff", 8);
  const auto s = decode_pcm16_frame(frame);
  REQUIRE(s.size() == 4);
  CHECK(s[0] == 0.0f);
  CHECK(s[1] == Approx(32767.0f / 32768.0f));
  CHECK(s[2] == -1.0f);
  CHECK(s[3] == Approx(-1.0f / 32768.0f));
  CHECK(decode_pcm16_frame("").empty());
  try {
    decode_pcm16_frame("abc");
    FAIL("odd frame accepted");
  } catch (const ProtocolError& e) {
    CHECK(e.code == kCloseInvalidData);
    CHECK(e.error.code == "invalid_audio");
  }
}

}  // namespace talkserve::pipeline
