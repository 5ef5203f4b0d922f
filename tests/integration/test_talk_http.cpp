// POST /v1/talk through the real binary with the embedded models (pocketsphinx, stories260K,
// espeak-ng, the viseme renderer over the default portrait): the answer's shape, the clip
// checked with ffprobe, the mouth moving with the speech, the clip cache, streaming order,
// sessions and bad input.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <future>
#include <numeric>
#include <sstream>
#include <thread>

#include "support/data_paths.hpp"
#include "support/checks.hpp"
#include "support/english_normalizer.hpp"
#include "support/talkserve.hpp"

using namespace talkserve::itest;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

json talk_ok(const HttpClient& client, const json& body) {
  auto res = client.post_json("/v1/talk", body);
  INFO(res.status << " " << res.body);
  REQUIRE(res.status == 200);
  return res.json();
}

double pearson(const std::vector<double>& a, const std::vector<double>& b) {
  const double n = static_cast<double>(a.size());
  const double ma = std::accumulate(a.begin(), a.end(), 0.0) / n;
  const double mb = std::accumulate(b.begin(), b.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  return sab / std::sqrt(saa * sbb + 1e-12);
}

Talkserve::Options talk_server() {
  Talkserve::Options o;
  o.startup_timeout = 60s;
  return o;
}

}  // namespace

TEST_CASE("talk: a text turn returns the reply and a clip whose audio and video agree",
          "[talk]") {
  Talkserve server(talk_server());
  auto client = server.client(120s);
  auto j = talk_ok(client, json{{"text", "Tell me a story about a cat."}});
  CHECK(j["session_id"].get<std::string>().rfind("sess_", 0) == 0);
  CHECK(j["transcript"] == "Tell me a story about a cat.");
  CHECK(j["reply"].get<std::string>().size() > 10);
  CHECK(j["trace_id"].is_string());
  CHECK(j["cached"] == false);
  for (const char* k : {"llm_ms", "tts_ms", "render_ms", "encode_ms", "total_ms"}) {
    CHECK(j["timings"][k].is_number());
  }
  const std::string url = j["video_url"];
  REQUIRE(url.rfind("/v1/clips/", 0) == 0);
  auto clip = client.get(url);
  REQUIRE(clip.status == 200);
  CHECK(clip.header("Content-Type").value_or("") == "video/mp4");

  TempDir dir;
  const auto path = dir.path() / "clip.mp4";
  std::ofstream(path, std::ios::binary) << clip.body;
  const std::string probe = run_command("ffprobe -v error -show_entries stream=codec_name,duration -of csv=p=0 '" +
                                path.string() + "'");
  INFO(probe);
  double video = -1, audio = -1;
  std::istringstream lines(probe);
  for (std::string line; std::getline(lines, line);) {
    const auto comma = line.find(',');
    if (comma == std::string::npos) continue;
    const double d = std::stod(line.substr(comma + 1));
    if (line.rfind("h264", 0) == 0) video = d;
    if (line.rfind("aac", 0) == 0) audio = d;
  }
  REQUIRE(video > 1.0);
  REQUIRE(audio > 1.0);
  CHECK(std::abs(video - audio) <= 1.0 / 25 + 1e-3);

  // The mouth moves with the speech: per frame, how far the mouth box is from the still
  // portrait follows the loudness of that frame's audio (the renderer eases between mouth
  // shapes over a few frames, so the loudness is smoothed over three frames too).
  auto info = client.get("/v1/avatar").json();
  const int w = info["width"], h = info["height"];
  const auto mouth = info["mouth"];
  const int mx = mouth["x"], my = mouth["y"], mw = mouth["width"], mh = mouth["height"];
  REQUIRE(mw > 0);
  const std::string frames = run_command("ffmpeg -v error -i '" + path.string() +
                                 "' -f rawvideo -pix_fmt gray -");
  const std::string still = run_command("ffmpeg -v error -i '" + models_dir() +
                                "/avatar-default/portrait.png' -vf scale=" + std::to_string(w) + ":" +
                                std::to_string(h) + " -f rawvideo -pix_fmt gray -");
  const std::string pcm = run_command("ffmpeg -v error -i '" + path.string() + "' -f s16le -ac 1 -ar 16000 -");
  REQUIRE(still.size() == static_cast<std::size_t>(w * h));
  const std::size_t n_frames = frames.size() / (w * h);
  REQUIRE(n_frames > 25);
  std::vector<double> change, loudness;
  const std::size_t per_frame = 16000 / 25;
  for (std::size_t f = 0; f < n_frames && (f + 1) * per_frame * 2 <= pcm.size(); ++f) {
    double diff = 0;
    for (int y = my; y < my + mh; ++y) {
      for (int x = mx; x < mx + mw; ++x) {
        const std::size_t i = static_cast<std::size_t>(y) * w + x;
        diff += std::abs(static_cast<unsigned char>(frames[f * w * h + i]) -
                         static_cast<unsigned char>(still[i]));
      }
    }
    change.push_back(diff / (mw * mh));
    double e = 0;
    for (std::size_t s = 0; s < per_frame; ++s) {
      const auto* p = reinterpret_cast<const std::int16_t*>(pcm.data()) + f * per_frame + s;
      e += static_cast<double>(*p) * *p;
    }
    loudness.push_back(std::sqrt(e / per_frame) / 32768.0);
  }
  std::vector<double> smooth(loudness.size());
  for (std::size_t i = 0; i < loudness.size(); ++i) {
    const std::size_t lo = i == 0 ? 0 : i - 1, hi = std::min(loudness.size() - 1, i + 1);
    smooth[i] = std::accumulate(loudness.begin() + lo, loudness.begin() + hi + 1, 0.0) / (hi - lo + 1);
  }
  loudness = smooth;
  const double r = pearson(change, loudness);
  WARN("mouth change vs loudness: r = " << r << " over " << change.size() << " frames");
  CHECK(r > 0.4);
  // And it is still in silence: frames whose neighbourhood (+-2 frames) is silent barely
  // differ from the portrait, compared with frames of speech.
  double silent_sum = 0, loud_sum = 0;
  int silent_n = 0, loud_n = 0;
  for (std::size_t i = 2; i + 2 < loudness.size(); ++i) {
    double around = 0;
    for (std::size_t k = i - 2; k <= i + 2; ++k) around = std::max(around, loudness[k]);
    if (around < 0.002) {
      silent_sum += change[i];
      ++silent_n;
    } else if (loudness[i] > 0.05) {
      loud_sum += change[i];
      ++loud_n;
    }
  }
  WARN(silent_n << " silent frames (mean change " << silent_sum / std::max(1, silent_n) << "), "
                << loud_n << " speech frames (" << loud_sum / std::max(1, loud_n) << ")");
  REQUIRE(loud_n > 10);
  if (silent_n >= 3) CHECK(silent_sum / silent_n < 0.25 * (loud_sum / loud_n));

  // The same turn again (a new session, greedy decoding: the same reply) is served from the
  // clip cache.
  auto again = talk_ok(client, json{{"text", "Tell me a story about a cat."}});
  CHECK(again["cached"] == true);
  CHECK(again["video_url"] == url);
  CHECK(again["session_id"] != j["session_id"]);
  WARN("miss " << j["timings"]["total_ms"] << " ms, hit " << again["timings"]["total_ms"] << " ms");
  CHECK(again["timings"]["total_ms"].get<double>() < j["timings"]["total_ms"].get<double>());
}

TEST_CASE("talk: a spoken turn is transcribed, and the session carries on", "[talk]") {
  Talkserve server(talk_server());
  auto client = server.client(120s);
  const std::string wav = read_file(std::filesystem::path(talkserve::test::speech_data_dir()) /
                                    "pocketsphinx_goforward.wav");
  const std::string boundary = "talk-boundary-1234";
  const std::string body = "--" + boundary +
                           "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n" +
                           wav + "\r\n--" + boundary + "--\r\n";
  auto res = client.request("POST", "/v1/talk", body,
                            {{"Content-Type", "multipart/form-data; boundary=" + boundary}});
  INFO(res.body.substr(0, 500));
  REQUIRE(res.status == 200);
  auto j = res.json();
  // Whisper writes "Go forward 10 meters."; compared after the English normaliser.
  CHECK(talkserve::test::normalize_english(j["transcript"].get<std::string>()) ==
        talkserve::test::normalize_english("go forward ten meters"));
  CHECK(j["timings"]["asr_ms"].get<double>() > 0);
  const std::string session = j["session_id"];

  auto next = talk_ok(client, json{{"text", "And then what happened?"}, {"session_id", session}});
  CHECK(next["session_id"] == session);
  const std::string unknown = "sess_0123456789abcdef0123456789abcdef";
  check_error_mentions(client.post_json("/v1/talk", json{{"text", "hi"}, {"session_id", unknown}}), 404, unknown);
  check_error_mentions(client.post_json("/v1/talk", json{{"text", "hi"}, {"session_id", "../etc/passwd"}}), 404,
                       "not a session id");
}

TEST_CASE("talk: spoken turns whose clients hang up are dropped before decoding", "[talk][disconnect]") {
  Talkserve server(talk_server());
  const std::string wav = read_file(std::filesystem::path(talkserve::test::speech_data_dir()) /
                                    "jfk.wav");  // 11 s
  const int clients = 16;
  const std::string boundary = "talk-boundary-1234";
  const std::string body = "--" + boundary +
                           "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n" +
                           wav + "\r\n--" + boundary + "--\r\n";
  const std::string request = "POST /v1/talk HTTP/1.1\r\nHost: test\r\n"
                              "Content-Type: multipart/form-data; boundary=" + boundary +
                              "\r\nContent-Length: " + std::to_string(body.size()) +
                              "\r\n\r\n" + body;
  const double before = server.metrics().value("talkserve_asr_audio_seconds_total").value_or(0);
  abandon_requests(server, request, clients);

  // Every turn ends; only those already decoding when their clients left reached the VAD.
  REQUIRE(poll_until([&] { return server.metrics().value("talkserve_in_flight_requests") == 0; },
                     60s, 50ms));
  const double seconds =
      server.metrics().value("talkserve_asr_audio_seconds_total").value_or(0) - before;
  INFO("segmented " << seconds << " s of audio for " << clients << " abandoned turns");
  CHECK(seconds < 0.5 * clients * 11.0);
  auto metrics = server.metrics();
  CHECK(metrics.value("talkserve_queue_depth", {{"executor", "asr"}}) == 0);
  CHECK(metrics.sum("talkserve_num_requests_running") == 0);

  auto client = server.client(120s);
  talk_ok(client, json{{"text", "Hello there"}});
}

TEST_CASE("talk: turns arriving behind a render backlog older than talk.max_queue_delay_ms get 503",
          "[talk][overload]") {
  Talkserve::Options o = talk_server();
  o.args = {"--set", "talk.max_queue_delay_ms=300"};
  Talkserve server(o);
  std::vector<std::future<HttpResponse>> turns;
  auto send = [&](int i) {
    turns.push_back(std::async(std::launch::async, [&server, i] {
      auto client = server.client(180s);
      // Distinct texts: no clip cache hit answers one turn from another.
      return client.post_json("/v1/talk", json{{"text", "Tell me about the number " +
                                                            std::to_string(i) + "."}});
    }));
  };
  auto shed_count = [&] {
    return server.metrics()
        .value("talkserve_queue_rejected_total", {{"executor", "talk"}, {"reason", "overloaded"}})
        .value_or(0);
  };
  // Eight turns at once: their clips queue for the two render threads.
  for (int i = 0; i < 8; ++i) send(i);
  for (int i = 8; i < 40 && shed_count() == 0; ++i) {
    std::this_thread::sleep_for(250ms);
    send(i);
  }
  REQUIRE(shed_count() >= 1);

  int ok = 0, shed = 0;
  for (std::size_t i = 0; i < turns.size(); ++i) {
    const HttpResponse res = turns[i].get();
    INFO(i << ": " << res.status << " " << res.body.substr(0, 300));
    if (res.status == 503) {
      ++shed;
      CHECK(res.json()["error"]["code"] == "overloaded");
      CHECK_THAT(res.json()["error"]["message"].get<std::string>(),
                 Catch::Contains("talk.max_queue_delay_ms"));
      CHECK(res.header("Retry-After").has_value());
    } else {
      ++ok;
      REQUIRE(res.status == 200);
      CHECK(res.json()["video_url"].is_string());
    }
  }
  CHECK(shed == shed_count());
  CHECK(ok >= 8);  // the first eight found the pool idle and finished

  // The backlog is gone: turns are admitted again.
  auto client = server.client(180s);
  talk_ok(client, json{{"text", "Hello again"}});
}

TEST_CASE("talk: stream true sends each stage as an event, in order", "[talk]") {
  Talkserve server(talk_server());
  SseStream stream(server.client(120s), "/v1/talk",
                   json{{"text", "Once upon a time"}, {"stream", true}});
  REQUIRE(stream.status() == 200);
  auto events = stream.read_all();
  std::vector<std::string> kinds;
  std::string reply;
  for (const auto& e : events) {
    auto j = json::parse(e);
    if (j.contains("session_id") && j.contains("trace_id") && !j.contains("reply")) kinds.push_back("session");
    else if (j.contains("text") && j.size() == 1 && kinds.size() == 1) kinds.push_back("transcript");
    else if (j.contains("finish_reason")) kinds.push_back("reply.done");
    else if (j.contains("text") && j.size() == 1) { kinds.push_back("reply.delta"); reply += j["text"].get<std::string>(); }
    else if (j.contains("audio_url") && j.size() == 2) kinds.push_back("audio");
    else if (j.contains("video_url") && j.contains("cached") && !j.contains("reply")) kinds.push_back("video");
    else if (j.contains("reply")) { kinds.push_back("done"); CHECK(j["reply"] == reply); }
  }
  INFO(events.size() << " events");
  REQUIRE(kinds.size() >= 6);
  CHECK(kinds.front() == "session");
  CHECK(kinds[1] == "transcript");
  CHECK(kinds[2] == "reply.delta");
  const auto done_at = std::find(kinds.begin(), kinds.end(), "reply.done");
  REQUIRE(done_at != kinds.end());
  CHECK(std::all_of(kinds.begin() + 2, done_at, [](const std::string& k) { return k == "reply.delta"; }));
  CHECK(*(done_at + 1) == "audio");
  CHECK(*(done_at + 2) == "video");
  CHECK(kinds.back() == "done");
}

TEST_CASE("talk: bad input gets a clear error and harms nothing", "[talk][errors]") {
  Talkserve server(talk_server());
  auto client = server.client(60s);
  check_error_mentions(client.post_json("/v1/talk", json::object()), 400, "text or audio");
  check_error_mentions(client.post_json("/v1/talk", json{{"text", "  "}}), 400, "text");
  check_error_mentions(client.post_json("/v1/talk", json{{"text", "hi"}, {"audio", "AAAA"}}), 400, "either");
  check_error_mentions(client.post_json("/v1/talk", json{{"audio", "bm90IGF1ZGlv"}}), 415);
  check_error_mentions(client.post_json("/v1/talk", json{{"text", "hi"}, {"voice", "nobody"}}), 400, "nobody");
  check_error_mentions(client.request("POST", "/v1/talk", "{oops", {{"Content-Type", "application/json"}}), 400,
              "JSON");
  check_error_mentions(client.get("/v1/clips/../../etc/passwd"), 404);
  check_error_mentions(client.get("/v1/clips/" + std::string(64, 'a') + ".mp4"), 404);
  auto ok = talk_ok(client, json{{"text", "Hello"}});
  CHECK(ok["video_url"].is_string());
}
