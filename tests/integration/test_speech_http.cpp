// The speech routes of the running server with the default models (Whisper tiny.en, Silero
// VAD, espeak-ng): OpenAI-shaped transcriptions and speech, every bad input with its status,
// load shedding, and a TTS -> ASR round trip. Transcripts are compared after the English
// normaliser (tests/support/english_normalizer.hpp): Whisper writes "Go forward 10 meters.".
// Whisper's accuracy over the shared recordings, hostile audio and its verbose_json fields are
// in test_whisper_http.cpp.

#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include "support/data_paths.hpp"
#include "support/checks.hpp"
#include "support/english_normalizer.hpp"
#include "support/talkserve.hpp"
#include "talkserve/media/audio.hpp"
#include "talkserve/speech/wer.hpp"

using namespace talkserve::itest;
using namespace std::chrono_literals;
using nlohmann::json;
using talkserve::test::normalize_english;

namespace {

const std::string kGoForward = "go forward 10 meters";  // "go forward ten meters", normalised

// Word errors after the English normaliser on both sides.
talkserve::speech::WordErrors normalized_errors(const std::string& reference,
                                                const std::string& hypothesis) {
  return talkserve::speech::word_errors(normalize_english(reference), normalize_english(hypothesis));
}

// The text of a response_format=text body (one line ending in a newline), normalised.
std::string text_body(const HttpResponse& res) {
  CHECK(!res.body.empty());
  CHECK(res.body.back() == '\n');
  return normalize_english(res.body);
}

const std::string kBoundary = "talkserve-test-boundary-7MA4YWxkTrZu0gW";

struct Field {
  std::string name;
  std::string value;
  std::optional<std::string> filename;
  std::string content_type;
};

std::string multipart(const std::vector<Field>& fields) {
  std::string body;
  for (const Field& f : fields) {
    body += "--" + kBoundary + "\r\nContent-Disposition: form-data; name=\"" + f.name + "\"";
    if (f.filename) body += "; filename=\"" + *f.filename + "\"";
    body += "\r\n";
    if (!f.content_type.empty()) body += "Content-Type: " + f.content_type + "\r\n";
    body += "\r\n" + f.value + "\r\n";
  }
  return body + "--" + kBoundary + "--\r\n";
}

HttpResponse post_multipart(const HttpClient& client, const std::vector<Field>& fields) {
  return client.request("POST", "/v1/audio/transcriptions", multipart(fields),
                        {{"Content-Type", "multipart/form-data; boundary=" + kBoundary}});
}

std::string speech_file(const std::string& name) {
  return read_file(std::filesystem::path(talkserve::test::speech_data_dir()) / name);
}

HttpResponse transcribe(const HttpClient& client, const std::string& audio,
                        const std::string& format = "json",
                        const std::string& filename = "audio.wav",
                        std::vector<Field> extra = {}) {
  std::vector<Field> fields{{"file", audio, filename, "application/octet-stream"},
                            {"model", "whisper-1", {}, ""},
                            {"response_format", format, {}, ""}};
  fields.insert(fields.end(), extra.begin(), extra.end());
  return post_multipart(client, fields);
}

Talkserve::Options speech_server(std::vector<std::string> extra = {}) {
  Talkserve::Options o;
  o.args = std::move(extra);  // the default recogniser: asr.backend = "whisper"
  o.startup_timeout = 120s;
  return o;
}

}  // namespace

TEST_CASE("transcriptions: a real recording in every response format", "[speech][asr]") {
  Talkserve server(speech_server());
  auto client = server.client(60s);
  const std::string wav = speech_file("pocketsphinx_goforward.wav");

  auto res = transcribe(client, wav, "json");
  INFO(res.body);
  REQUIRE(res.status == 200);
  const json body = res.json();
  CHECK(body.size() == 1);  // {"text": ...} and nothing else
  CHECK(normalize_english(body["text"].get<std::string>()) == kGoForward);

  res = transcribe(client, wav, "text");
  REQUIRE(res.status == 200);
  CHECK(text_body(res) == kGoForward);
  CHECK(res.header("Content-Type").value_or("").rfind("text/plain", 0) == 0);

  res = transcribe(client, wav, "srt");
  REQUIRE(res.status == 200);
  CHECK(res.body.rfind("1\n00:00:0", 0) == 0);
  CHECK(res.body.find(" --> ") != std::string::npos);
  CHECK(normalize_english(res.body).find(kGoForward) != std::string::npos);

  res = transcribe(client, wav, "vtt");
  REQUIRE(res.status == 200);
  CHECK(res.body.rfind("WEBVTT\n\n00:00:0", 0) == 0);

  res = transcribe(client, wav, "verbose_json", "a.wav",
                   {{"timestamp_granularities[]", "word", {}, ""},
                    {"timestamp_granularities[]", "segment", {}, ""},
                    {"language", "en", {}, ""}});
  REQUIRE(res.status == 200);
  auto j = res.json();
  CHECK(j["task"] == "transcribe");
  CHECK(j["language"] == "english");
  CHECK(j["duration"].get<double>() == Approx(2.8).margin(0.1));
  CHECK(normalize_english(j["text"].get<std::string>()) == kGoForward);
  REQUIRE(j["segments"].size() >= 1);
  CHECK(j["segments"][0]["start"].get<double>() >= 0.0);
  REQUIRE(j["words"].size() == 4);
  double prev = 0;
  for (const auto& w : j["words"]) {
    CHECK(w["start"].get<double>() >= prev - 1e-6);
    CHECK(w["end"].get<double>() > w["start"].get<double>());
    prev = w["end"].get<double>();
  }
  CHECK(prev <= 2.9);
}

TEST_CASE("transcriptions: compressed uploads and other sample rates decode", "[speech][asr]") {
  Talkserve server(speech_server());
  auto client = server.client(60s);
  TempDir dir;
  const auto src = std::filesystem::path(talkserve::test::speech_data_dir()) / "pocketsphinx_goforward.wav";
  for (const std::string ext : {"mp3", "ogg", "flac", "m4a", "webm"}) {
    const auto out = dir.path() / ("goforward." + ext);
    // Opus only takes 48 kHz; the others are resampled to 44.1 kHz stereo.
    const bool opus = ext == "ogg" || ext == "webm";
    const std::string codec = opus ? " -ar 48000 -c:a libopus" : " -ar 44100";
    run_command("ffmpeg -nostdin -loglevel error -y -i '" + src.string() + "' -ac 2" + codec +
        " '" + out.string() + "'");
    REQUIRE(std::filesystem::exists(out));
    auto res = transcribe(client, read_file(out), "json", "goforward." + ext);
    INFO(ext << ": " << res.body);
    REQUIRE(res.status == 200);
    const auto e = normalized_errors("go forward ten meters", res.json()["text"].get<std::string>());
    CHECK(e.errors() <= 1);
  }
}

TEST_CASE("transcriptions: every bad input gets its status and a clear error",
          "[speech][asr][errors]") {
  Talkserve server(speech_server({"--set", "asr.max_audio_seconds=5", "--set",
                                  "asr.max_upload_mb=1"}));
  auto client = server.client(60s);
  const std::string wav = speech_file("pocketsphinx_goforward.wav");

  check_error_mentions(transcribe(client, ""), 400, "empty");
  check_error_mentions(transcribe(client, std::string(4000, '\x5a') + "not audio at all"), 415);
  check_error_mentions(transcribe(client, "hello, this is a plain text file\n", "json", "notes.txt"), 415);
  check_error_mentions(transcribe(client, wav.substr(0, 60)), 400);  // a WAV header and nothing more
  check_error_mentions(post_multipart(client, {{"model", "whisper-1", {}, ""}}), 400, "file");
  check_error_mentions(client.request("POST", "/v1/audio/transcriptions", "--nope\r\n\r\n",
                             {{"Content-Type", "multipart/form-data; boundary=" + kBoundary}}),
              400, "multipart");
  check_error_mentions(client.request("POST", "/v1/audio/transcriptions", wav,
                             {{"Content-Type", "audio/wav"}}),
              400, "multipart/form-data");
  check_error_mentions(transcribe(client, speech_file("jfk.wav")), 413, "5");  // 11 s > 5 s
  check_error_mentions(transcribe(client, std::string(2 << 20, 'x')), 413);    // body over 1 MB
  check_error_mentions(transcribe(client, wav, "xml"), 400, "response_format");
  check_error_mentions(transcribe(client, wav, "json", "a.wav", {{"model", "nope", {}, ""}}), 400, "model");
  check_error_mentions(transcribe(client, wav, "json", "a.wav", {{"language", "xx", {}, ""}}), 400,
              "language");
  check_error_mentions(transcribe(client, wav, "json", "a.wav",
                         {{"timestamp_granularities[]", "word", {}, ""}}),
              400, "verbose_json");

  // Nothing above harmed the server: a good request still works.
  auto res = transcribe(client, wav, "text");
  REQUIRE(res.status == 200);
  CHECK(text_body(res) == kGoForward);
}

TEST_CASE("transcriptions: concurrent uploads, good and bad, each get their own answer",
          "[speech][asr]") {
  Talkserve server(speech_server());
  const std::string wav = speech_file("pocketsphinx_goforward.wav");
  std::vector<std::future<HttpResponse>> futures;
  for (int i = 0; i < 8; ++i) {
    futures.push_back(std::async(std::launch::async, [&, i] {
      auto client = server.client(120s);
      return transcribe(client, i % 4 == 3 ? std::string("garbage bytes") : wav, "text");
    }));
  }
  for (int i = 0; i < 8; ++i) {
    auto res = futures[i].get();
    INFO(i << ": " << res.status << " " << res.body);
    if (i % 4 == 3) {
      CHECK(res.status == 415);
    } else {
      CHECK(res.status == 200);
      CHECK(text_body(res) == kGoForward);
    }
  }
  auto metrics = server.client().get("/metrics").body;
  CHECK(metrics.find("talkserve_batch_size_count{executor=\"asr\"}") != std::string::npos);
}

TEST_CASE("transcriptions: uploads whose clients hang up are dropped before decoding",
          "[speech][asr][disconnect]") {
  Talkserve server(speech_server());
  const std::string wav = speech_file("jfk.wav");  // 11 s
  const int clients = 16;
  const std::string body = multipart({{"file", wav, "jfk.wav", "audio/wav"},
                                      {"model", "whisper-1", {}, ""}});
  const std::string request = "POST /v1/audio/transcriptions HTTP/1.1\r\nHost: test\r\n"
                              "Content-Type: multipart/form-data; boundary=" + kBoundary +
                              "\r\nContent-Length: " + std::to_string(body.size()) +
                              "\r\n\r\n" + body;
  const double seconds_before =
      server.metrics().value("talkserve_asr_audio_seconds_total").value_or(0);

  // All uploads sent in full, then every client hangs up before any answer: the media pool
  // (two threads) is still busy with the first ones and the rest are waiting for it.
  abandon_requests(server, request, clients);

  // Every request ends, and only the uploads already being decoded when their clients left
  // were segmented: the others were dropped where they waited.
  REQUIRE(poll_until([&] { return server.metrics().value("talkserve_in_flight_requests") == 0; },
                     60s, 50ms));
  const double seconds =
      server.metrics().value("talkserve_asr_audio_seconds_total").value_or(0) - seconds_before;
  INFO("segmented " << seconds << " s of audio for " << clients << " abandoned uploads");
  CHECK(seconds < 0.5 * clients * 11.0);
  CHECK(server.metrics().value("talkserve_queue_depth", {{"executor", "asr"}}) == 0);

  // The server still answers.
  auto client = server.client(120s);
  auto res = transcribe(client, speech_file("pocketsphinx_goforward.wav"), "text");
  CHECK(res.status == 200);
  CHECK(text_body(res) == kGoForward);
}

TEST_CASE("transcriptions: a backlog older than asr.max_queue_delay_ms sheds new uploads with 503",
          "[speech][asr][overload]") {
  // One worker, one segment per batch: a few 11 s recordings sent together keep the recogniser
  // busy for seconds (Whisper tiny.en takes about 1 s for each on one thread; one alone may be
  // done before anything has queued for 1 s), so the uploads after them wait in the queue and
  // the ones after those are shed at once.
  Talkserve server(speech_server({"--set", "asr.workers=1", "--set", "asr.max_batch=1", "--set",
                                  "asr.max_queue_delay_ms=1000"}));
  const std::size_t first_uploads = 4;
  const std::string jfk = speech_file("jfk.wav");
  const std::string goforward = speech_file("pocketsphinx_goforward.wav");
  std::vector<std::future<HttpResponse>> uploads;
  auto send = [&](const std::string& audio) {
    uploads.push_back(std::async(std::launch::async, [&server, &audio] {
      auto client = server.client(120s);
      return transcribe(client, audio, "text");
    }));
  };
  // Refused at arrival (overloaded), or admitted and then dropped still queued at twice the
  // bound (expired): both answered 503 overloaded.
  auto shed_count = [&] {
    auto m = server.metrics();
    double n = 0;
    for (const char* reason : {"overloaded", "expired"}) {
      n += m.value("talkserve_queue_rejected_total", {{"executor", "asr"}, {"reason", reason}})
               .value_or(0);
    }
    n += m.value("talkserve_queue_rejected_total", {{"executor", "media"}, {"reason", "overloaded"}})
             .value_or(0);
    return n;
  };
  for (std::size_t i = 0; i < first_uploads; ++i) {
    send(jfk);
    std::this_thread::sleep_for(50ms);  // in order: the first finds the recogniser idle
  }
  // Until one is shed: each new upload either queues behind the first (and ages the queue) or
  // is refused because queued audio has already waited over 1 s.
  for (int i = 0; i < 12 && shed_count() == 0; ++i) {
    std::this_thread::sleep_for(500ms);
    send(goforward);
  }
  REQUIRE(shed_count() >= 1);

  int ok = 0, shed = 0;
  for (std::size_t i = 0; i < uploads.size(); ++i) {
    const HttpResponse res = uploads[i].get();
    INFO(i << ": " << res.status << " " << res.body);
    if (res.status == 503) {
      ++shed;
      CHECK(res.json()["error"]["code"] == "overloaded");
      CHECK(res.header("Retry-After").has_value());
      CHECK(i > 0);  // the first upload found an idle recogniser
    } else {
      ++ok;
      REQUIRE(res.status == 200);
      if (i < first_uploads) {
        CHECK_THAT(res.body, Catch::Contains("country"));
      } else {
        CHECK(text_body(res) == kGoForward);
      }
    }
  }
  CHECK(shed >= 1);
  CHECK(ok >= 1);  // the first upload
  CHECK(shed_count() == shed);

  // Once the backlog is gone, uploads are accepted again.
  auto client = server.client(120s);
  auto res = transcribe(client, goforward, "text");
  CHECK(res.status == 200);
  CHECK(server.metrics().value("talkserve_queue_depth", {{"executor", "asr"}}) == 0);
}

TEST_CASE("speech: streamed audio in every format, valid per ffprobe", "[speech][tts]") {
  Talkserve server(speech_server());
  auto client = server.client(60s);
  TempDir dir;
  const std::string input = "Hello there. This is a test of the speech endpoint! Is it working?";
  const std::vector<std::pair<std::string, std::string>> formats{
      {"mp3", "mp3"}, {"opus", "opus"}, {"aac", "aac"}, {"flac", "flac"}, {"wav", "pcm_s16le"}};
  for (const auto& [format, codec] : formats) {
    auto res = client.post_json("/v1/audio/speech", json{{"model", "tts-1"},
                                                         {"input", input},
                                                         {"voice", "alloy"},
                                                         {"response_format", format}});
    INFO(format << ": " << res.status);
    REQUIRE(res.status == 200);
    CHECK(res.header("Transfer-Encoding").value_or("") == "chunked");
    const auto path = dir.path() / ("speech." + format);
    std::ofstream(path, std::ios::binary) << res.body;
    const std::string probe = run_command("ffprobe -v error -show_entries stream=codec_name -of csv=p=0 '" +
                                  path.string() + "'");
    CHECK(probe.find(codec) != std::string::npos);
    auto decoded = talkserve::media::decode_audio(
        {reinterpret_cast<const std::uint8_t*>(res.body.data()), res.body.size()});
    CHECK(decoded.duration_seconds() > 2.0);
    CHECK(decoded.duration_seconds() < 12.0);
  }
  // pcm: raw 16-bit little-endian mono at 24 kHz, as OpenAI's API defines it.
  auto pcm = client.post_json("/v1/audio/speech",
                              json{{"input", "One two three."}, {"voice", "alloy"},
                                   {"response_format", "pcm"}});
  REQUIRE(pcm.status == 200);
  CHECK(pcm.body.size() % 2 == 0);
  CHECK(pcm.body.size() / 2.0 / 24000 > 0.5);
}

TEST_CASE("speech: sse stream_format sends base64 audio deltas then done", "[speech][tts]") {
  Talkserve server(speech_server());
  SseStream stream(server.client(60s), "/v1/audio/speech",
                   json{{"input", "First sentence. Second sentence."},
                        {"voice", "alloy"},
                        {"response_format", "pcm"},
                        {"stream_format", "sse"}});
  REQUIRE(stream.status() == 200);
  auto events = stream.read_all();
  REQUIRE(events.size() >= 3);
  for (std::size_t i = 0; i + 1 < events.size(); ++i) {
    auto j = json::parse(events[i]);
    CHECK(j["type"] == "speech.audio.delta");
    CHECK(j["audio"].get<std::string>().size() > 100);
  }
  auto last = json::parse(events.back());
  CHECK(last["type"] == "speech.audio.done");
  CHECK(last["usage"]["input_tokens"].get<int>() > 0);
}

TEST_CASE("speech: bad requests get 400 with the parameter named", "[speech][tts][errors]") {
  Talkserve server(speech_server({"--set", "tts.max_input_chars=100"}));
  auto client = server.client(30s);
  auto post = [&](const json& body) { return client.post_json("/v1/audio/speech", body); };
  check_error_mentions(post(json{{"voice", "alloy"}}), 400, "input");
  check_error_mentions(post(json{{"input", ""}, {"voice", "alloy"}}), 400, "input");
  check_error_mentions(post(json{{"input", "   "}, {"voice", "alloy"}}), 400, "input");
  check_error_mentions(post(json{{"input", std::string(101, 'a')}, {"voice", "alloy"}}), 400, "100");
  check_error_mentions(post(json{{"input", "hi"}, {"voice", "no-such-voice"}}), 400, "no-such-voice");
  check_error_mentions(post(json{{"input", "hi"}, {"voice", "alloy"}, {"speed", 9}}), 400, "speed");
  check_error_mentions(post(json{{"input", "hi"}, {"voice", "alloy"}, {"response_format", "ogg"}}), 400,
              "response_format");
  check_error_mentions(post(json{{"input", 42}, {"voice", "alloy"}}), 400, "input");
  check_error_mentions(client.request("POST", "/v1/audio/speech", "{not json",
                             {{"Content-Type", "application/json"}}),
              400, "JSON");
  auto ok = post(json{{"input", "Still fine."}, {"voice", "alloy"}, {"response_format", "wav"}});
  CHECK(ok.status == 200);
  auto voices = client.get("/v1/audio/voices");
  REQUIRE(voices.status == 200);
  CHECK(voices.json()["data"].size() >= 6);
}

TEST_CASE("round trip: synthesised English is recognised by the ASR stage",
          "[speech][roundtrip]") {
  Talkserve server(speech_server());
  auto client = server.client(120s);
  const std::vector<std::string> sentences{
      "The weather is nice today.", "Please open the door.", "I would like a cup of coffee.",
      "We are going to the park.", "Call me in the morning.", "The cat is sleeping on the bed."};
  talkserve::speech::WordErrors total;
  for (const auto& s : sentences) {
    auto audio = client.post_json("/v1/audio/speech",
                                  json{{"input", s}, {"voice", "alloy"}, {"response_format", "wav"}});
    REQUIRE(audio.status == 200);
    auto res = transcribe(client, audio.body, "text", "tts.wav");
    REQUIRE(res.status == 200);
    const auto e = normalized_errors(s, res.body);
    total += e;
    WARN("\"" << s << "\" -> \"" << res.body.substr(0, res.body.size() - 1) << "\" (" << e.errors()
              << " errors)");
  }
  const double recovery = 1.0 - total.rate();
  WARN("word recovery rate: " << recovery * 100 << "% over " << total.reference_words << " words");
  // Measured 82% with espeak-ng "alloy" and Whisper tiny.en (53% with pocketsphinx en-us).
  CHECK(recovery >= 0.65);
}
