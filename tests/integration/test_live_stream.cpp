// GET /v1/stream through the real binary with the embedded models: a typed turn streamed as
// events, audio frames and fragmented MP4 (checked with ffprobe), spoken input through the VAD
// and ASR, cancellation and barge-in, sessions shared with POST /v1/talk, and protocol errors
// that close one session while another goes on (docs/protocol.md).

#include <catch2/catch.hpp>

#include <cstdint>
#include <fstream>
#include <sstream>

#include "support/checks.hpp"
#include "support/data_paths.hpp"
#include "support/talkserve.hpp"
#include "support/wav_file.hpp"
#include "support/ws_client.hpp"

using namespace talkserve::itest;
using namespace std::chrono_literals;
using nlohmann::json;
using talkserve::test::WsClient;
namespace websocket = boost::beast::websocket;

namespace {

// One frame from the server: a JSON event, or a binary frame with its 12-byte header parsed.
struct Frame {
  bool binary = false;
  json event;
  int kind = 0;
  bool last = false;
  std::uint32_t response = 0;
  std::uint32_t seq = 0;
  std::string payload;

  std::string type() const { return binary ? "binary" : event.value("type", ""); }
  std::uint32_t response_id() const {
    return binary ? response : event.value("response_id", 0u);
  }
};

std::uint32_t u32(const std::string& s, std::size_t at) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<std::uint8_t>(s[at + i]);
  return v;
}

class Live {
 public:
  explicit Live(const Talkserve& server, const std::string& target = "/v1/stream") : ws_(server.port()) {
    auto ec = ws_.handshake(target, 10s);
    INFO(ec.message());
    REQUIRE_FALSE(ec);
  }

  void send(const json& j) { REQUIRE_FALSE(ws_.send_text(j.dump(), 10s)); }
  void send_raw(const std::string& text) { REQUIRE_FALSE(ws_.send_text(text, 10s)); }
  void send_audio(const std::string& pcm) { REQUIRE_FALSE(ws_.send_binary(pcm, 10s)); }

  // The next frame; nullopt when the session closed (close_reason() says how) or timed out.
  std::optional<Frame> next(std::chrono::milliseconds timeout = 60s) {
    boost::beast::error_code ec;
    auto m = ws_.read(timeout, &ec);
    if (!m) {
      last_error_ = ec;
      return std::nullopt;
    }
    Frame f;
    f.binary = m->binary;
    if (!m->binary) {
      f.event = json::parse(m->data);
      return f;
    }
    REQUIRE(m->data.size() >= 12);
    f.kind = static_cast<std::uint8_t>(m->data[0]);
    f.last = (m->data[1] & 1) != 0;
    f.response = u32(m->data, 4);
    f.seq = u32(m->data, 8);
    f.payload = m->data.substr(12);
    return f;
  }

  // Reads until an event of `type` arrives (REQUIREs it does); the frames before it are kept.
  json until(const std::string& type, std::vector<Frame>* before = nullptr) {
    for (;;) {
      auto f = next();
      INFO("waiting for " << type << "; " << last_error_.message());
      REQUIRE(f);
      if (!f->binary) INFO(f->event.dump());
      if (f->type() == type) return f->event;
      REQUIRE(f->type() != "error");
      if (before) before->push_back(std::move(*f));
    }
  }

  json start(json fields = json::object()) {
    fields["type"] = "session.start";
    send(fields);
    return until("session.started");
  }

  // Everything of response `id` up to its response.done (inclusive).
  std::vector<Frame> response(std::uint32_t id) {
    std::vector<Frame> out;
    for (;;) {
      auto f = next();
      INFO(last_error_.message());
      REQUIRE(f);
      if (f->response_id() != id) continue;
      if (!f->binary) INFO(f->event.dump());
      REQUIRE(f->type() != "error");
      REQUIRE(f->type() != "response.cancelled");
      out.push_back(*f);
      if (f->type() == "response.done") return out;
    }
  }

  // Reads until the server closes the session; returns the error events seen.
  std::vector<json> until_closed() {
    std::vector<json> errors;
    for (;;) {
      auto f = next(30s);
      if (!f) return errors;
      if (f->type() == "error") errors.push_back(f->event);
    }
  }
  websocket::close_reason close_reason() const { return ws_.close_reason(); }
  const boost::beast::error_code& last_error() const { return last_error_; }
  WsClient& ws() { return ws_; }

 private:
  WsClient ws_;
  boost::beast::error_code last_error_;
};

Talkserve::Options live_server() {
  Talkserve::Options o;
  o.startup_timeout = 60s;
  return o;
}

// PCM16 little-endian bytes of 16 kHz float samples.
std::string pcm16(const std::vector<float>& samples) {
  std::string out(samples.size() * 2, '\0');
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const auto v = static_cast<std::int16_t>(std::lrint(std::clamp(samples[i], -1.0f, 1.0f) * 32767.0f));
    out[2 * i] = static_cast<char>(v & 0xff);
    out[2 * i + 1] = static_cast<char>((v >> 8) & 0xff);
  }
  return out;
}

// A real recording ("go forward ten meters") followed by a second of silence, as 40 ms frames.
std::vector<std::string> spoken_frames() {
  auto wav = talkserve::test::read_wav_pcm16(talkserve::test::speech_data_dir() + "/pocketsphinx_goforward.wav");
  REQUIRE(wav.sample_rate == 16000);
  std::vector<float> audio = wav.samples;
  audio.resize(audio.size() + 16000, 0.0f);
  std::vector<std::string> frames;
  for (std::size_t i = 0; i < audio.size(); i += 640) {
    const std::size_t end = std::min(audio.size(), i + 640);
    frames.push_back(pcm16(std::vector<float>(audio.begin() + static_cast<std::ptrdiff_t>(i),
                                              audio.begin() + static_cast<std::ptrdiff_t>(end))));
  }
  return frames;
}

// Stream durations by codec from ffprobe.
std::map<std::string, double> probe_durations(const std::string& mp4) {
  TempDir dir;
  const auto path = dir.path() / "live.mp4";
  std::ofstream(path, std::ios::binary) << mp4;
  const std::string probe = run_command(
      "ffprobe -v error -show_entries stream=codec_name:format=duration -of csv=p=0 '" + path.string() + "'");
  // Fragmented MP4 streams report no per-stream duration: decode each stream to count it.
  const std::string video = run_command("ffprobe -v error -select_streams v:0 -count_frames -show_entries "
                                        "stream=nb_read_frames,r_frame_rate -of csv=p=0 '" + path.string() + "'");
  const std::string audio = run_command("ffprobe -v error -select_streams a:0 -show_entries packet=pts_time,duration_time "
                                        "-of csv=p=0 '" + path.string() + "' | tail -n 1");
  INFO(probe << "\n" << video << "\n" << audio);
  std::map<std::string, double> out;
  out["h264"] = probe.find("h264") != std::string::npos ? 1 : 0;
  out["aac"] = probe.find("aac") != std::string::npos ? 1 : 0;
  {
    int frames = 0, num = 0, den = 1;
    char slash = 0, comma = 0;
    std::istringstream in(video);
    in >> num >> slash >> den >> comma >> frames;  // "25/1,123"
    out["video_seconds"] = den > 0 && num > 0 ? frames * static_cast<double>(den) / num : -1;
  }
  {
    double pts = -1, dur = 0;
    char comma = 0;
    std::istringstream in(audio);
    in >> pts >> comma >> dur;
    out["audio_seconds"] = pts + dur;
  }
  return out;
}

}  // namespace

TEST_CASE("live: a typed turn streams text, audio and fragmented MP4 in order", "[live]") {
  Talkserve server(live_server());
  Live live(server);
  const json started = live.start();
  CHECK(started["session_id"].get<std::string>().rfind("sess_", 0) == 0);
  CHECK(started["audio"]["format"] == "pcm16");
  CHECK(started["audio"]["sample_rate"] == 24000);
  CHECK(started["avatar"]["fps"] == 25);
  CHECK(started["video"]["mime"].get<std::string>().find("avc1.") != std::string::npos);
  CHECK(started["vad"] == true);

  live.send({{"type", "input.text"}, {"text", "Tell me a story about a dog."}});
  auto frames = live.response(1);
  REQUIRE(frames.size() > 4);
  CHECK(frames.front().type() == "response.started");
  CHECK(frames.front().event["input"] == "text");
  CHECK(frames.back().type() == "response.done");

  std::string reply, reply_done, mp4, audio;
  int init_segments = 0, media_segments = 0, audio_frames = 0;
  std::uint32_t next_video_seq = 0, next_audio_seq = 0;
  bool saw_done = false, video_last = false, audio_last = false;
  std::size_t first_video = 0, reply_done_at = 0;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    const Frame& f = frames[i];
    if (f.type() == "reply.delta") {
      CHECK_FALSE(saw_done);  // deltas stop at reply.done
      reply += f.event["text"].get<std::string>();
    } else if (f.type() == "reply.done") {
      saw_done = true;
      reply_done = f.event["text"];
      reply_done_at = i;
    } else if (f.binary && f.kind == 1) {
      CHECK(f.seq == next_audio_seq++);
      CHECK_FALSE(audio_last);
      audio_last = f.last;
      audio += f.payload;
      ++audio_frames;
    } else if (f.binary && f.kind == 2) {
      CHECK(init_segments++ == 0);
      CHECK(f.last);  // the only one of its kind
      CHECK(media_segments == 0);  // the init segment comes first
      mp4 += f.payload;
    } else if (f.binary && f.kind == 3) {
      CHECK(init_segments == 1);
      CHECK(f.seq == next_video_seq++);
      CHECK_FALSE(video_last);
      video_last = f.last;
      if (media_segments++ == 0) first_video = i;
      mp4 += f.payload;
    }
  }
  CHECK(reply == reply_done);
  CHECK(reply.size() > 10);
  CHECK(audio_last);
  CHECK(video_last);
  CHECK(audio_frames >= 1);
  CHECK(media_segments >= 2);
  CHECK(first_video > 0);
  CHECK(reply_done_at > 0);

  const json& done = frames.back().event;
  const double audio_seconds = done["audio_seconds"];
  CHECK(audio_seconds == Approx(audio.size() / 2 / 24000.0).margin(1e-6));
  CHECK(audio_seconds > 1.0);
  for (const char* k : {"first_audio_ms", "first_video_ms", "llm_first_token_ms", "total_ms"}) {
    INFO(k);
    CHECK(done["timings"][k].is_number());
  }
  CHECK(done["timings"]["first_audio_ms"].get<double>() <= done["timings"]["first_video_ms"].get<double>());

  // The segments make one playable H.264 + AAC stream whose video covers the audio.
  auto d = probe_durations(mp4);
  CHECK(d["h264"] == 1);
  CHECK(d["aac"] == 1);
  CHECK(d["video_seconds"] == Approx(audio_seconds).margin(1.0 / 25 + 1e-3));
  CHECK(d["audio_seconds"] == Approx(audio_seconds).margin(0.1));

  // The turn is in the session: POST /v1/talk continues the same conversation.
  auto client = server.client(120s);
  auto res = client.post_json("/v1/talk", json{{"text", "And then?"}, {"session_id", started["session_id"]}});
  INFO(res.body);
  CHECK(res.status == 200);
}

TEST_CASE("live: spoken input is detected, transcribed and answered", "[live]") {
  Talkserve server(live_server());
  Live live(server);
  live.start({{"video", false}});
  for (const auto& frame : spoken_frames()) live.send_audio(frame);
  const json start = live.until("vad.speech_start");
  std::vector<Frame> between;
  const json end = live.until("vad.speech_end", &between);
  CHECK(start["audio_ms"].get<double>() < end["audio_ms"].get<double>());
  CHECK(end["audio_ms"].get<double>() > 1500);
  const json transcript = live.until("transcript.final");
  INFO(transcript.dump());
  const std::string text = transcript["text"];
  CHECK(text.find("forward") != std::string::npos);
  const std::uint32_t id = transcript["response_id"];
  auto frames = live.response(id);
  CHECK(frames.front().event["input"] == "audio");
  bool video = false, audio = false;
  for (const auto& f : frames) {
    video = video || (f.binary && f.kind != 1);
    audio = audio || (f.binary && f.kind == 1);
  }
  CHECK(audio);
  CHECK_FALSE(video);  // session.start asked for no video
}

TEST_CASE("live: response.cancel and new speech stop the running response", "[live]") {
  Talkserve server(live_server());
  Live live(server);
  live.start();

  SECTION("response.cancel") {
    live.send({{"type", "input.text"}, {"text", "Tell me a long story."}});
    live.until("response.started");
    live.send({{"type", "response.cancel"}});
    const json cancelled = live.until("response.cancelled");
    CHECK(cancelled["response_id"] == 1);
    CHECK(cancelled["reason"] == "client");
  }
  SECTION("barge-in by voice") {
    live.send({{"type", "input.text"}, {"text", "Tell me a long story."}});
    live.until("response.started");
    for (const auto& frame : spoken_frames()) live.send_audio(frame);
    const json cancelled = live.until("response.cancelled");
    CHECK(cancelled["response_id"] == 1);
    CHECK(cancelled["reason"] == "barge_in");
  }
  SECTION("new typed input") {
    live.send({{"type", "input.text"}, {"text", "Tell me a long story."}});
    live.until("response.started");
    live.send({{"type", "input.text"}, {"text", "Tell me about a bird."}});
    const json cancelled = live.until("response.cancelled");
    CHECK(cancelled["response_id"] == 1);
    CHECK(cancelled["reason"] == "new_input");
  }
  // Nothing of response 1 follows its cancellation, and the session answers the next input.
  live.send({{"type", "input.text"}, {"text", "Tell me about a cat."}});
  std::vector<Frame> frames;
  for (;;) {
    auto f = live.next();
    REQUIRE(f);
    if (!f->binary) INFO(f->event.dump());
    CHECK(f->response_id() != 1);
    REQUIRE(f->type() != "error");
    if (f->type() == "response.done") break;
  }
}

TEST_CASE("live: a protocol error closes that session only", "[live]") {
  Talkserve server(live_server());
  Live good(server);
  good.start();
  good.send({{"type", "input.text"}, {"text", "Tell me a story."}});

  struct Case {
    const char* name;
    std::function<void(Live&)> act;
    websocket::close_code code;
    const char* error_code;
  };
  const std::vector<Case> cases = {
      {"not JSON", [](Live& l) { l.send_raw("{nope"); }, websocket::close_code::bad_payload, "invalid_json"},
      {"not an object", [](Live& l) { l.send_raw("[1,2]"); }, websocket::close_code::bad_payload, "invalid_json"},
      {"odd audio", [](Live& l) { l.start(); l.send_audio(std::string(3, '\0')); },
       websocket::close_code::bad_payload, "invalid_audio"},
      {"unknown type", [](Live& l) { l.send({{"type", "input.video"}}); }, websocket::close_code::policy_error,
       "unknown_type"},
      {"input before start", [](Live& l) { l.send({{"type", "input.text"}, {"text", "hi"}}); },
       websocket::close_code::policy_error, "protocol_error"},
      {"second start", [](Live& l) { l.start(); l.send({{"type", "session.start"}}); },
       websocket::close_code::policy_error, "protocol_error"},
      {"unknown voice", [](Live& l) { l.send({{"type", "session.start"}, {"voice", "no-such-voice"}}); },
       websocket::close_code::policy_error, "unknown_voice"},
      {"unknown session", [](Live& l) { l.send({{"type", "session.start"}, {"session_id", "sess_missing"}}); },
       websocket::close_code::policy_error, "session_not_found"},
      {"text not a string", [](Live& l) { l.start(); l.send({{"type", "input.text"}, {"text", 5}}); },
       websocket::close_code::policy_error, "protocol_error"},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    Live bad(server);
    c.act(bad);
    auto errors = bad.until_closed();
    REQUIRE(errors.size() == 1);
    CHECK(errors[0]["error"]["code"] == c.error_code);
    CHECK(errors[0]["error"]["message"].get<std::string>().size() > 5);
    CHECK(bad.last_error() == websocket::error::closed);
    CHECK(bad.close_reason().code == c.code);
  }
  // The well-behaved session was not disturbed.
  auto frames = good.response(1);
  CHECK(frames.back().type() == "response.done");
}

TEST_CASE("live: the upgrade needs a WebSocket and, with keys, a key", "[live]") {
  auto options = live_server();
  options.args = {"--set", "gateway.keys=[{name=\"demo\", key=\"sk-live-test-123\"}]"};
  Talkserve server(options);
  auto client = server.client();
  auto plain = client.get("/v1/stream", {{"Authorization", "Bearer sk-live-test-123"}});
  CHECK(plain.status == 426);
  {
    WsClient ws(server.port());
    CHECK(ws.handshake("/v1/stream", 10s));
    CHECK(ws.upgrade_response().result_int() == 401);
  }
  {
    WsClient ws(server.port());
    CHECK(ws.handshake("/v1/stream?api_key=wrong", 10s));
    CHECK(ws.upgrade_response().result_int() == 401);
  }
  Live live(server, "/v1/stream?api_key=sk-live-test-123");
  CHECK(live.start()["session_id"].is_string());
}
