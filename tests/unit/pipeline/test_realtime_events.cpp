// The Realtime client events (pipeline/realtime_events): every event type parses into its typed
// form, beta and GA session.update shapes, malformed events are refused with the failing
// event_id, and the server-side JSON (names per dialect, items, session, heard text).

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <variant>

#include "pipeline/realtime_events.hpp"

namespace talkserve::pipeline::realtime {
namespace {

using nlohmann::json;

template <typename T>
T parse_as(const json& j, std::string* event_id = nullptr) {
  ParsedEvent ev = parse_client_event(j.dump());
  if (event_id) *event_id = ev.event_id;
  REQUIRE(std::holds_alternative<T>(ev.event));
  return std::get<T>(ev.event);
}

EventError refusal(std::string_view frame) {
  try {
    parse_client_event(frame);
  } catch (const EventError& e) {
    return e;
  }
  FAIL("accepted: " << frame);
  return EventError("", "");
}

}  // namespace

TEST_CASE("realtime: beta session.update", "[pipeline][realtime]") {
  std::string eid;
  auto u = parse_as<SessionUpdate>({{"type", "session.update"},
                                    {"event_id", "ev_1"},
                                    {"session",
                                     {{"modalities", {"text"}},
                                      {"instructions", "Be brief."},
                                      {"voice", "alloy"},
                                      {"input_audio_format", "g711_ulaw"},
                                      {"output_audio_format", "g711_alaw"},
                                      {"input_audio_transcription", {{"model", "whisper-1"}}},
                                      {"turn_detection",
                                       {{"type", "server_vad"},
                                        {"threshold", 0.6},
                                        {"prefix_padding_ms", 200},
                                        {"silence_duration_ms", 400},
                                        {"create_response", false},
                                        {"interrupt_response", false}}},
                                      {"temperature", 0.8},
                                      {"max_response_output_tokens", 50},
                                      {"tools", json::array()},
                                      {"video", true}}}},
                                   &eid);
  CHECK(eid == "ev_1");
  CHECK(u.dialect == Dialect::beta);
  SessionSettings s;
  apply(s, u);
  CHECK_FALSE(s.audio_out);
  CHECK(s.instructions == "Be brief.");
  CHECK(s.voice == "alloy");
  CHECK(s.input_format == AudioFormat::g711_ulaw);
  CHECK(s.output_format == AudioFormat::g711_alaw);
  REQUIRE(s.turn_detection);
  CHECK(s.turn_detection->threshold == Approx(0.6));
  CHECK(s.turn_detection->prefix_padding_ms == 200);
  CHECK(s.turn_detection->silence_duration_ms == 400);
  CHECK_FALSE(s.turn_detection->create_response);
  CHECK_FALSE(s.turn_detection->interrupt_response);
  CHECK(s.temperature == Approx(0.8));
  CHECK(s.max_output_tokens == 50);
  CHECK(s.video);

  // null turns turn detection off (manual turns); "inf" lifts the token limit; absent fields stay.
  apply(s, parse_as<SessionUpdate>({{"type", "session.update"},
                                    {"session",
                                     {{"turn_detection", nullptr},
                                      {"max_response_output_tokens", "inf"},
                                      {"input_audio_transcription", nullptr}}}}));
  CHECK_FALSE(s.turn_detection);
  CHECK_FALSE(s.max_output_tokens);
  CHECK_FALSE(s.transcription);
  CHECK(s.voice == "alloy");
  CHECK(s.input_format == AudioFormat::g711_ulaw);
  // An update with no beta- or GA-only field keeps the session's shape.
  CHECK_FALSE(
      parse_as<SessionUpdate>({{"type", "session.update"}, {"session", {{"instructions", "x"}}}})
          .dialect);
}

TEST_CASE("realtime: GA session.update nests audio settings", "[pipeline][realtime]") {
  auto u = parse_as<SessionUpdate>({{"type", "session.update"},
                                    {"session",
                                     {{"type", "realtime"},
                                      {"model", "gpt-realtime"},
                                      {"output_modalities", {"audio"}},
                                      {"instructions", "Hi"},
                                      {"audio",
                                       {{"input",
                                         {{"format", {{"type", "audio/pcmu"}}},
                                          {"transcription", {{"model", "whisper-1"}}},
                                          {"turn_detection", nullptr},
                                          {"noise_reduction", nullptr}}},
                                        {"output",
                                         {{"format", {{"type", "audio/pcm"}, {"rate", 24000}}},
                                          {"voice", "alloy"},
                                          {"speed", 1.0}}}}},
                                      {"max_output_tokens", 64},
                                      {"tracing", nullptr}}}});
  CHECK(u.dialect == Dialect::ga);
  SessionSettings s;
  apply(s, u);
  CHECK(s.audio_out);
  CHECK(s.input_format == AudioFormat::g711_ulaw);
  CHECK(s.output_format == AudioFormat::pcm16);
  CHECK_FALSE(s.turn_detection);
  CHECK(s.voice == "alloy");
  CHECK(s.max_output_tokens == 64);

  // The session object comes back in the dialect's shape.
  const json ga = session_json(s, Dialect::ga, "sess_1", "talkserve");
  CHECK(ga["type"] == "realtime");
  CHECK(ga["audio"]["input"]["format"]["type"] == "audio/pcmu");
  CHECK(ga["audio"]["output"]["format"] == json({{"type", "audio/pcm"}, {"rate", 24000}}));
  CHECK(ga["audio"]["input"]["turn_detection"].is_null());
  CHECK(ga["output_modalities"] == json({"audio"}));
  const json beta = session_json(s, Dialect::beta, "sess_1", "talkserve");
  CHECK(beta["input_audio_format"] == "g711_ulaw");
  CHECK(beta["modalities"] == json({"text", "audio"}));
  CHECK(beta["max_response_output_tokens"] == 64);
}

TEST_CASE("realtime: every other client event", "[pipeline][realtime]") {
  CHECK(parse_as<AudioAppend>({{"type", "input_audio_buffer.append"}, {"audio", "AAEC"}}).audio ==
        std::string("\x00\x01\x02", 3));
  parse_as<AudioCommit>({{"type", "input_audio_buffer.commit"}});
  parse_as<AudioClear>({{"type", "input_audio_buffer.clear"}});
  parse_as<OutputAudioClear>({{"type", "output_audio_buffer.clear"}});
  CHECK(parse_as<ItemRetrieve>({{"type", "conversation.item.retrieve"}, {"item_id", "item_1"}})
            .item_id == "item_1");
  CHECK(
      parse_as<ItemDelete>({{"type", "conversation.item.delete"}, {"item_id", "item_2"}}).item_id ==
      "item_2");
  auto t = parse_as<ItemTruncate>({{"type", "conversation.item.truncate"},
                                   {"item_id", "i"},
                                   {"content_index", 0},
                                   {"audio_end_ms", 1500}});
  CHECK(t.audio_end_ms == 1500);
  CHECK(parse_as<ResponseCancel>({{"type", "response.cancel"}, {"response_id", "resp_1"}})
            .response_id == "resp_1");
  CHECK_FALSE(parse_as<ResponseCancel>({{"type", "response.cancel"}}).response_id);

  auto user = parse_as<ItemCreate>({{"type", "conversation.item.create"},
                                    {"previous_item_id", "root"},
                                    {"item",
                                     {{"type", "message"},
                                      {"role", "user"},
                                      {"content",
                                       {{{"type", "input_text"}, {"text", "Hello"}},
                                        {{"type", "input_audio"}, {"audio", "AAAA"}}}}}}});
  CHECK(user.previous_item_id == "root");
  REQUIRE(user.item.content.size() == 2);
  CHECK(user.item.content[0].text == "Hello");
  CHECK(user.item.content[1].type == ContentType::input_audio);
  CHECK(user.item.content[1].audio.size() == 3);
  CHECK_FALSE(user.item.content[1].has_transcript);
  // Assistant messages in both spellings.
  for (const char* type : {"text", "output_text"}) {
    auto a = parse_as<ItemCreate>({{"type", "conversation.item.create"},
                                   {"item",
                                    {{"id", "mine"},
                                     {"type", "message"},
                                     {"role", "assistant"},
                                     {"content", {{{"type", type}, {"text", "Hi there"}}}}}}});
    CHECK(a.item.id == "mine");
    CHECK(item_text(a.item) == "Hi there");
  }
  auto spoken = parse_as<ItemCreate>(
      {{"type", "conversation.item.create"},
       {"item",
        {{"type", "message"},
         {"role", "assistant"},
         {"content", {{{"type", "output_audio"}, {"transcript", "Said."}}}}}}});
  CHECK(spoken.item.content[0].type == ContentType::audio);

  auto rc =
      parse_as<ResponseCreate>({{"type", "response.create"},
                                {"response",
                                 {{"modalities", {"text"}},
                                  {"instructions", "Shout."},
                                  {"conversation", "none"},
                                  {"metadata", {{"k", "v"}}},
                                  {"max_output_tokens", 20},
                                  {"temperature", 0.7},
                                  {"input",
                                   {{{"type", "message"},
                                     {"role", "user"},
                                     {"content", {{{"type", "input_text"}, {"text", "x"}}}}}}}}}});
  CHECK(rc.overrides.audio_out == false);
  CHECK(rc.overrides.instructions == "Shout.");
  CHECK(rc.overrides.out_of_band);
  CHECK(rc.overrides.metadata["k"] == "v");
  CHECK(rc.overrides.max_output_tokens == std::optional<int>(20));
  REQUIRE(rc.overrides.input);
  CHECK(rc.overrides.input->size() == 1);
  auto ga = parse_as<ResponseCreate>(json::parse(
      R"({"type":"response.create","response":{"output_modalities":["audio"],
          "audio":{"output":{"format":{"type":"audio/pcma"},"voice":"alloy"}}}})"));
  CHECK(ga.overrides.output_format == AudioFormat::g711_alaw);
  CHECK(ga.overrides.voice == "alloy");
  parse_as<ResponseCreate>({{"type", "response.create"}});
}

TEST_CASE("realtime: malformed events are refused with the failing event_id",
          "[pipeline][realtime]") {
  struct Case {
    const char* frame;
    const char* code;
    const char* param;
    const char* event_id;
  };
  const std::vector<Case> cases = {
      {"{nope", "invalid_json", "", ""},
      {"[1,2]", "invalid_json", "", ""},
      {R"({"event_id":"e1"})", "missing_required_parameter", "type", "e1"},
      {R"({"event_id":"e2","type":"input.text"})", "unknown_event_type", "type", "e2"},
      {R"({"event_id":"e3","type":"input_audio_buffer.append","audio":"%%%"})", "invalid_audio",
       "audio", "e3"},
      {R"({"event_id":"e4","type":"input_audio_buffer.append","audio":5})", "invalid_type", "audio",
       "e4"},
      {R"({"event_id":"e5","type":"session.update","session":{"turn_detection":{"threshold":2}}})",
       "decimal_out_of_range", "session.turn_detection.threshold", "e5"},
      {R"({"event_id":"e6","type":"session.update","session":{"input_audio_format":"opus"}})",
       "invalid_value", "session.input_audio_format", "e6"},
      {R"({"event_id":"e7","type":"session.update","session":{"voise":"alloy"}})",
       "unknown_parameter", "session.voise", "e7"},
      {R"({"event_id":"e8","type":"session.update","session":{"type":"transcription"}})",
       "unsupported_parameter", "session.type", "e8"},
      {R"({"event_id":"e9","type":"conversation.item.create","item":{"type":"message","role":"robot","content":[]}})",
       "invalid_value", "item.role", "e9"},
      {R"({"event_id":"e10","type":"conversation.item.create","item":{"type":"function_call","role":"user"}})",
       "unsupported_parameter", "item.type", "e10"},
      {R"({"event_id":"e11","type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"output_text","text":"x"}]}})",
       "invalid_value", "item.content[0].type", "e11"},
      {R"({"event_id":"e12","type":"conversation.item.truncate","item_id":"i","content_index":0})",
       "missing_required_parameter", "audio_end_ms", "e12"},
      {R"({"event_id":"e13","type":"response.create","response":{"tools":[{"type":"function","name":"f"}]}})",
       "unsupported_parameter", "response.tools", "e13"},
      {R"({"event_id":"e14","type":"response.create","response":{"max_output_tokens":0}})",
       "integer_out_of_range", "response.max_output_tokens", "e14"},
      {R"({"event_id":"e15","type":"session.update","session":{"audio":{"output":{"format":{"type":"audio/pcm","rate":16000}}}}})",
       "invalid_value", "session.audio.output.format.rate", "e15"},
      {R"({"event_id":7,"type":"response.cancel"})", "invalid_value", "event_id", ""},
  };
  for (const auto& c : cases) {
    INFO(c.frame);
    const EventError e = refusal(c.frame);
    CHECK(e.code == c.code);
    CHECK(e.param == c.param);
    CHECK(e.event_id == c.event_id);
    CHECK(std::string(e.what()).size() > 5);
    const json ev = error_event(e);
    CHECK(ev["type"] == "error");
    CHECK(ev["error"]["type"] == "invalid_request_error");
    CHECK(ev["error"]["code"] == c.code);
    if (*c.event_id) CHECK(ev["error"]["event_id"] == c.event_id);
  }
  // The JSON parser's message (which quotes the client's bytes) is not echoed.
  CHECK(std::string(refusal("{\"a\":\xff}").what()) == "the event is not valid JSON");
}

TEST_CASE("realtime: server event names, items and heard text", "[pipeline][realtime]") {
  CHECK(event_name(Dialect::beta, "response.audio.delta") == "response.audio.delta");
  CHECK(event_name(Dialect::ga, "response.audio.delta") == "response.output_audio.delta");
  CHECK(event_name(Dialect::ga, "response.audio_transcript.done") ==
        "response.output_audio_transcript.done");
  CHECK(event_name(Dialect::ga, "response.text.delta") == "response.output_text.delta");
  CHECK(event_name(Dialect::ga, "conversation.item.created") == "conversation.item.added");
  CHECK(event_name(Dialect::ga, "response.done") == "response.done");

  Item item;
  item.id = "item_1";
  item.role = "assistant";
  ContentPart p;
  p.type = ContentType::audio;
  p.transcript = "Hello there.";
  item.content.push_back(p);
  CHECK(item_json(item, Dialect::beta)["content"][0] ==
        json({{"type", "audio"}, {"transcript", "Hello there."}}));
  CHECK(item_json(item, Dialect::ga)["content"][0]["type"] == "output_audio");
  CHECK(item_json(item, Dialect::ga)["object"] == "realtime.item");

  const std::vector<std::string> sentences{"One two three four.", "Five six seven eight."};
  const std::vector<double> ends{1000, 2000};
  CHECK(heard_text(sentences, ends, 0) == "");
  CHECK(heard_text(sentences, ends, 500) == "One two");
  CHECK(heard_text(sentences, ends, 1000) == "One two three four.");
  CHECK(heard_text(sentences, ends, 1750) == "One two three four. Five six seven");
  CHECK(heard_text(sentences, ends, 2000) == "One two three four. Five six seven eight.");
}

}  // namespace talkserve::pipeline::realtime
