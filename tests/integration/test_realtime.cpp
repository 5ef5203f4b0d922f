// GET /v1/realtime through the real binary with the embedded models (docs/realtime.md): a
// spoken turn (speech made by the server's own TTS, streamed in real time in 40 ms appends)
// answered in the documented event order with a transcript, reply audio and usage; a GA
// text-only session; malformed events answered with errors while the session and a second
// one go on; the API keys on the upgrade.

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <thread>

#include "support/talkserve.hpp"
#include "support/ws_client.hpp"

using namespace talkserve::itest;
using namespace std::chrono_literals;
using nlohmann::json;
using talkserve::test::WsClient;

namespace {

constexpr const char* kKey = "sk-realtime-test-1";

std::string base64(std::string_view in) {
  static const char* abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(abc[(acc >> bits) & 63]);
    }
  }
  if (bits > 0) out.push_back(abc[(acc << (6 - bits)) & 63]);
  while (out.size() % 4) out.push_back('=');
  return out;
}

class Realtime {
 public:
  Realtime(const Talkserve& server, const std::string& target, bool bearer) : ws_(server.port()) {
    if (bearer) ws_.set_header("Authorization", std::string("Bearer ") + kKey);
    auto ec = ws_.handshake(target, 10s);
    INFO(ec.message());
    REQUIRE_FALSE(ec);
    const json created = next();
    REQUIRE(created["type"] == "session.created");
    session = created["session"];
    CHECK(next()["type"] == "conversation.created");  // the beta shape until a GA session.update
  }
  void send(const json& ev) { REQUIRE_FALSE(ws_.send_text(ev.dump(), 10s)); }
  void send_raw(const std::string& text) { REQUIRE_FALSE(ws_.send_text(text, 10s)); }
  json next(std::chrono::milliseconds timeout = 60s) {
    boost::beast::error_code ec;
    auto m = ws_.read(timeout, &ec);
    INFO(ec.message());
    REQUIRE(m);
    REQUIRE_FALSE(m->binary);
    return json::parse(m->data);
  }
  // Reads up to (and including) the first event of `type`; all of them are kept in `seen`.
  json until(const std::string& type) {
    for (;;) {
      json ev = next();
      seen.push_back(ev);
      if (ev["type"] == type) return ev;
    }
  }
  std::size_t index_of(const std::string& type) const {
    for (std::size_t i = 0; i < seen.size(); ++i) {
      if (seen[i]["type"] == type) return i;
    }
    return seen.size();
  }
  json session;
  std::vector<json> seen;

 private:
  WsClient ws_;
};

}  // namespace

TEST_CASE("realtime: spoken and typed turns, errors that leave sessions going, keys",
          "[realtime]") {
  Talkserve::Options options;
  options.startup_timeout = 60s;
  options.args = {"--set", std::string("gateway.keys=[{name=\"rt\", key=\"") + kKey + "\"}]"};
  Talkserve server(options);
  {
    WsClient ws(server.port());
    CHECK(ws.handshake("/v1/realtime?model=talkserve", 10s));
    CHECK(ws.upgrade_response().result_int() == 401);
  }
  {
    WsClient ws(server.port());
    CHECK(ws.handshake("/v1/realtime?api_key=wrong", 10s));
    CHECK(ws.upgrade_response().result_int() == 401);
  }

  // The utterance, spoken by the server's TTS: PCM16 at 24 kHz.
  auto client = server.client(60s);
  auto speech =
      client.post_json("/v1/audio/speech",
                       json{{"input", "What is the name of the cat?"}, {"response_format", "pcm"}},
                       {{"Authorization", std::string("Bearer ") + kKey}});
  REQUIRE(speech.status == 200);
  REQUIRE(speech.body.size() > 24000);  // over half a second

  SECTION("a spoken turn in the documented order") {
    Realtime rt(server, "/v1/realtime?model=talkserve", /*bearer=*/true);
    CHECK(rt.session["turn_detection"]["type"] == "server_vad");
    rt.send({{"type", "session.update"},
             {"session",
              {{"turn_detection", {{"type", "server_vad"}, {"silence_duration_ms", 500}}},
               {"input_audio_transcription", {{"model", "whisper-1"}}},
               {"video", true}}}});
    CHECK(rt.until("session.updated")["session"]["turn_detection"]["silence_duration_ms"] == 500);

    // Real time: 40 ms of audio every 40 ms; then a second of silence ends the turn.
    std::string audio(static_cast<std::size_t>(0.3 * 48000), '\0');
    audio += speech.body;
    audio.append(48000, '\0');
    const std::size_t chunk = 1920;
    auto t = std::chrono::steady_clock::now();
    for (std::size_t at = 0; at < audio.size(); at += chunk) {
      rt.send({{"type", "input_audio_buffer.append"}, {"audio", base64(audio.substr(at, chunk))}});
      t += 40ms;
      std::this_thread::sleep_until(t);
    }
    const json done = rt.until("response.done");
    std::vector<std::string> order;
    for (const char* type :
         {"input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
          "input_audio_buffer.committed", "conversation.item.created",
          "conversation.item.input_audio_transcription.completed", "response.created",
          "response.audio_transcript.delta", "response.audio.delta", "response.audio.done",
          "response.audio_transcript.done", "response.output_item.done", "response.done"}) {
      INFO(type);
      CHECK(rt.index_of(type) < rt.seen.size());
      order.push_back(type);
    }
    for (std::size_t i = 0; i + 1 < order.size(); ++i) {
      if (order[i] == "response.audio_transcript.delta") continue;  // interleaved with the audio
      INFO(order[i] << " before " << order[i + 1]);
      CHECK(rt.index_of(order[i]) < rt.index_of(order[i + 1]));
    }
    const json transcript =
        rt.seen[rt.index_of("conversation.item.input_audio_transcription.completed")];
    INFO(transcript.dump());
    CHECK_FALSE(transcript["transcript"].get<std::string>().empty());
    CHECK(transcript["item_id"] == rt.seen[rt.index_of("input_audio_buffer.committed")]["item_id"]);
    std::size_t audio_bytes = 0;
    for (const auto& ev : rt.seen) {
      if (ev["type"] == "response.audio.delta")
        audio_bytes += ev["delta"].get<std::string>().size() * 3 / 4;
    }
    CHECK(audio_bytes > 24000);
    const json& response = done["response"];
    INFO(response.dump());
    // The tiny story model often writes until talk.max_tokens: then the response is incomplete.
    CHECK((response["status"] == "completed" || response["status"] == "incomplete"));
    CHECK(response["usage"]["input_tokens"].get<int>() > 0);
    CHECK(response["usage"]["output_tokens"].get<int>() > 0);
    CHECK(response["usage"]["total_tokens"].get<int>() ==
          response["usage"]["input_tokens"].get<int>() +
              response["usage"]["output_tokens"].get<int>());
    CHECK_FALSE(response["output"][0]["content"][0]["transcript"].get<std::string>().empty());
    // The avatar's video (extension): an init segment, media segments, then the done event.
    std::vector<std::string> segments;
    for (const auto& ev : rt.seen) {
      if (ev["type"] == "response.output_video.delta") segments.push_back(ev["segment"]);
    }
    REQUIRE(segments.size() >= 2);
    CHECK(segments.front() == "init");
    CHECK(segments.back() == "media");
    CHECK(rt.index_of("response.output_video.done") < rt.index_of("response.done"));
    std::cout << "realtime voice turn timings: " << response["timings"].dump() << "\n";
    CHECK(response["timings"]["voice_to_voice_ms"].is_number());
  }

  SECTION("a GA text-only session; malformed events next to it") {
    Realtime text(server, std::string("/v1/realtime?api_key=") + kKey, /*bearer=*/false);
    Realtime bad(server, std::string("/v1/realtime?api_key=") + kKey, /*bearer=*/false);
    text.send({{"type", "session.update"},
               {"session",
                {{"type", "realtime"},
                 {"output_modalities", {"text"}},
                 {"audio", {{"input", {{"turn_detection", nullptr}}}}}}}});
    CHECK(text.until("session.updated")["session"]["output_modalities"] == json({"text"}));
    text.send({{"type", "conversation.item.create"},
               {"item",
                {{"type", "message"},
                 {"role", "user"},
                 {"content", {{{"type", "input_text"}, {"text", "Tell me about a dog."}}}}}}});
    text.send({{"type", "response.create"}});

    // Ten bad events on the other session: each an error naming its event_id.
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"{nope", "invalid_json"},
        {R"({"type":"input.text","event_id":"b2"})", "unknown_event_type"},
        {R"({"type":"input_audio_buffer.append","event_id":"b3","audio":"@@@"})", "invalid_audio"},
        {R"({"type":"input_audio_buffer.commit","event_id":"b4"})",
         "input_audio_buffer_commit_empty"},
        {R"({"type":"conversation.item.delete","event_id":"b5","item_id":"item_none"})",
         "item_not_found"},
        {R"({"type":"conversation.item.truncate","event_id":"b6","item_id":"item_none","content_index":0,"audio_end_ms":10})",
         "item_not_found"},
        {R"({"type":"response.cancel","event_id":"b7"})", "response_cancel_not_active"},
        {R"({"type":"session.update","event_id":"b8","session":{"voice":"no-such-voice"}})",
         "unknown_voice"},
        {R"({"type":"session.update","event_id":"b9","session":{"turn_detection":{"threshold":"high"}}})",
         "invalid_type"},
        {R"({"type":"conversation.item.create","event_id":"b10","item":{"type":"message","role":"tool","content":[]}})",
         "invalid_value"},
    };
    for (const auto& [frame, code] : cases) {
      INFO(frame);
      bad.send_raw(frame);
      const json err = bad.next(10s);
      REQUIRE(err["type"] == "error");
      CHECK(err["error"]["code"] == code);
      const json parsed = json::parse(frame, nullptr, false);
      if (!parsed.is_discarded()) CHECK(err["error"]["event_id"] == parsed["event_id"]);
    }
    // The bad session goes on.
    bad.send({{"type", "conversation.item.create"},
              {"item",
               {{"type", "message"},
                {"role", "user"},
                {"content", {{{"type", "input_text"}, {"text", "Hello."}}}}}}});
    CHECK(bad.until("conversation.item.created")["item"]["role"] == "user");
    bad.send({{"type", "response.create"}, {"response", {{"modalities", {"text"}}}}});
    const std::string bad_status = bad.until("response.done")["response"]["status"];
    CHECK((bad_status == "completed" || bad_status == "incomplete"));

    // And the other one was not disturbed.
    const json done = text.until("response.done");
    const std::string status = done["response"]["status"];
    CHECK((status == "completed" || status == "incomplete"));
    CHECK(text.index_of("response.output_text.delta") < text.index_of("response.output_text.done"));
    CHECK(text.index_of("response.output_audio.delta") == text.seen.size());
    const std::string reply = text.seen[text.index_of("response.output_text.done")]["text"];
    CHECK(reply.size() > 3);
    CHECK(done["response"]["output"][0]["content"][0] ==
          json({{"type", "output_text"}, {"text", reply}}));
  }
}
