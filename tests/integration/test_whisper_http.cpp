// POST /v1/audio/transcriptions of the real server with its default recogniser, Whisper
// tiny.en on libtorch (asr.backend = "whisper", models/whisper-tiny-en), Silero VAD in front:
// accuracy over the shared recordings, hostile audio with a bystander request, Whisper's
// verbose_json fields and captions, and the prompt and language fields.
//
// Word error rates are computed after the English normaliser of tests/support/
// english_normalizer.hpp (lower case, punctuation, contractions, titles, numbers in words ->
// digits), so that Whisper's written style ("Go forward 10 meters.") and the corpora's spoken
// style ("go forward ten meters") compare word for word.
//
// Each test case starts one server and runs several checks on it (a server start loads every
// default model).

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <future>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include "support/checks.hpp"
#include "support/data_paths.hpp"
#include "support/english_normalizer.hpp"
#include "support/talkserve.hpp"
#include "support/temp_dir.hpp"
#include "support/wav_file.hpp"
#include "talkserve/speech/wer.hpp"

using namespace talkserve::itest;
using namespace std::chrono_literals;
using nlohmann::json;
using talkserve::test::normalize_english;

namespace {

const std::string kBoundary = "talkserve-whisper-boundary-4QbT0c2r8hZ";
const std::string kGoForward = "go forward 10 meters";  // normalised

struct Field {
  std::string name;
  std::string value;
  std::optional<std::string> filename;
};

HttpResponse transcribe(const HttpClient& client, const std::string& audio,
                        const std::string& format = "json", std::vector<Field> extra = {},
                        const std::string& filename = "audio.wav") {
  std::vector<Field> fields{{"file", audio, filename}, {"model", "whisper-1", {}},
                            {"response_format", format, {}}};
  fields.insert(fields.end(), extra.begin(), extra.end());
  std::string body;
  for (const Field& f : fields) {
    body += "--" + kBoundary + "\r\nContent-Disposition: form-data; name=\"" + f.name + "\"";
    if (f.filename) body += "; filename=\"" + *f.filename + "\"\r\nContent-Type: application/octet-stream";
    body += "\r\n\r\n" + f.value + "\r\n";
  }
  body += "--" + kBoundary + "--\r\n";
  return client.request("POST", "/v1/audio/transcriptions", body,
                        {{"Content-Type", "multipart/form-data; boundary=" + kBoundary}});
}

std::string speech_path(const std::string& name) {
  return talkserve::test::speech_data_dir() + "/" + name;
}
std::string speech_file(const std::string& name) { return read_file(speech_path(name)); }

// PCM16 WAV bytes; `samples` interleaved when channels > 1.
std::string wav_bytes(const std::vector<float>& samples, int rate, int channels = 1) {
  std::string out;
  auto u32 = [&](std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  auto u16 = [&](std::uint16_t v) {
    out.push_back(static_cast<char>(v & 0xff));
    out.push_back(static_cast<char>(v >> 8));
  };
  const auto data = static_cast<std::uint32_t>(samples.size() * 2);
  out += "RIFF";
  u32(36 + data);
  out += "WAVEfmt ";
  u32(16);
  u16(1);
  u16(static_cast<std::uint16_t>(channels));
  u32(static_cast<std::uint32_t>(rate));
  u32(static_cast<std::uint32_t>(rate * channels * 2));
  u16(static_cast<std::uint16_t>(channels * 2));
  u16(16);
  out += "data";
  u32(data);
  for (float f : samples) {
    const float c = std::clamp(f, -1.0f, 1.0f);
    u16(static_cast<std::uint16_t>(static_cast<std::int16_t>(std::lround(c * 32767.0f))));
  }
  return out;
}

std::string text_of(const HttpResponse& res) {
  return res.status == 200 ? res.json()["text"].get<std::string>() : std::string();
}

std::size_t word_count(const std::string& text) {
  return talkserve::test::english_words(text).size();
}

struct Clip {
  std::string file;
  std::string transcript;
};

std::vector<Clip> speech_clips() {
  std::ifstream in(talkserve::test::speech_data_dir() + "/transcripts.tsv");
  REQUIRE(in);
  std::vector<Clip> clips;
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    const auto t1 = line.find('\t');
    const auto t2 = line.find('\t', t1 + 1);
    if (t1 == std::string::npos) continue;
    clips.push_back({line.substr(0, t1), line.substr(t1 + 1, t2 - t1 - 1)});
  }
  return clips;
}

talkserve::speech::WordErrors normalized_errors(const std::string& reference,
                                                const std::string& hypothesis) {
  return talkserve::speech::word_errors(normalize_english(reference), normalize_english(hypothesis));
}

Talkserve::Options whisper_server(std::vector<std::string> extra = {}) {
  Talkserve::Options o;
  o.args = {"--set", "asr.backend=\"whisper\""};  // the default; named so the test says it
  o.args.insert(o.args.end(), extra.begin(), extra.end());
  o.startup_timeout = 120s;
  return o;
}

// "HH:MM:SS<sep>mmm" -> seconds, or -1 when malformed.
double caption_seconds(const std::string& t, char sep) {
  static const std::regex comma(R"((\d{2}):(\d{2}):(\d{2}),(\d{3}))");
  static const std::regex dot(R"((\d{2}):(\d{2}):(\d{2})\.(\d{3}))");
  std::smatch m;
  if (!std::regex_match(t, m, sep == ',' ? comma : dot)) return -1;
  return std::stoi(m[1]) * 3600 + std::stoi(m[2]) * 60 + std::stoi(m[3]) + std::stoi(m[4]) / 1000.0;
}

struct Caption {
  int number = 0;  // srt only
  double start = 0, end = 0;
  std::string text;
};

// Parses SRT (numbered cues, HH:MM:SS,mmm) or WebVTT (a WEBVTT header, HH:MM:SS.mmm); every
// malformed line fails a CHECK.
std::vector<Caption> parse_captions(const std::string& body, bool vtt) {
  std::vector<Caption> cues;
  std::istringstream in(body);
  std::string line;
  if (vtt) {
    std::getline(in, line);
    CHECK(line == "WEBVTT");
    std::getline(in, line);
    CHECK(line.empty());
  }
  const char sep = vtt ? '.' : ',';
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    Caption c;
    if (!vtt) {
      INFO("cue number line: " << line);
      CHECK(std::regex_match(line, std::regex(R"(\d+)")));
      c.number = std::atoi(line.c_str());
      if (!std::getline(in, line)) break;
    }
    INFO("timing line: " << line);
    const auto arrow = line.find(" --> ");
    REQUIRE(arrow != std::string::npos);
    c.start = caption_seconds(line.substr(0, arrow), sep);
    c.end = caption_seconds(line.substr(arrow + 5), sep);
    CHECK(c.start >= 0);
    CHECK(c.end >= c.start);
    while (std::getline(in, line) && !line.empty()) c.text += (c.text.empty() ? "" : " ") + line;
    CHECK(!c.text.empty());
    cues.push_back(c);
  }
  return cues;
}

// Runs `hostile` while a normal upload (goforward) is in flight on another connection, and
// checks that the normal upload got its own, right answer.
template <typename F>
void with_bystander(const Talkserve& server, const std::string& what, F hostile) {
  const std::string goforward = speech_file("pocketsphinx_goforward.wav");
  auto bystander = std::async(std::launch::async, [&server, &goforward] {
    auto client = server.client(300s);
    return transcribe(client, goforward, "json");
  });
  hostile();
  const HttpResponse res = bystander.get();
  INFO("bystander during " << what << ": " << res.status << " " << res.body);
  CHECK(res.status == 200);
  CHECK(normalize_english(text_of(res)) == kGoForward);
}

}  // namespace

TEST_CASE("whisper: word error rate over the shared recordings", "[speech][asr][whisper][accuracy]") {
  // Every recording uploaded at once (the server batches their segments together), each
  // answer compared with its reference after the English normaliser.
  Talkserve server(whisper_server());
  const auto clips = speech_clips();
  REQUIRE(clips.size() == 15);
  std::vector<std::future<HttpResponse>> answers;
  const auto t0 = std::chrono::steady_clock::now();
  for (const Clip& clip : clips) {
    answers.push_back(std::async(std::launch::async, [&server, &clip] {
      auto client = server.client(300s);
      return transcribe(client, speech_file(clip.file), "json", {}, clip.file);
    }));
  }
  talkserve::speech::WordErrors total;
  for (std::size_t i = 0; i < clips.size(); ++i) {
    const HttpResponse res = answers[i].get();
    INFO(clips[i].file << ": " << res.status << " " << res.body);
    REQUIRE(res.status == 200);
    const std::string text = text_of(res);
    const auto e = normalized_errors(clips[i].transcript, text);
    total += e;
    WARN(clips[i].file << ": WER " << e.rate() * 100 << "% (" << e.errors() << "/"
                       << e.reference_words << ")\n  ref: " << normalize_english(clips[i].transcript)
                       << "\n  hyp: " << normalize_english(text));
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  WARN("whisper overall WER " << total.rate() * 100 << "% over " << total.reference_words
                              << " words (" << total.substitutions << " sub, " << total.deletions
                              << " del, " << total.insertions << " ins), 15 uploads in " << seconds
                              << " s");
  CHECK(total.rate() <= 0.12);
}

TEST_CASE("whisper: hostile audio gets a clear answer and a concurrent upload is unaffected",
          "[speech][asr][whisper][hostile]") {
  Talkserve server(whisper_server());
  auto client = server.client(300s);
  const int rate = 16000;
  const auto goforward = talkserve::test::read_wav_pcm16(speech_path("pocketsphinx_goforward.wav"));
  REQUIRE(goforward.sample_rate == rate);

  with_bystander(server, "silence", [&] {
    auto res = transcribe(client, wav_bytes(std::vector<float>(5 * rate, 0.0f), rate));
    INFO("5 s of zeros: " << res.body);
    REQUIRE(res.status == 200);
    CHECK(text_of(res).empty());
  });

  with_bystander(server, "white noise", [&] {
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> u(-0.5f, 0.5f);
    std::vector<float> noise(3 * rate);
    for (float& s : noise) s = u(rng);
    auto res = transcribe(client, wav_bytes(noise, rate));
    INFO("3 s of white noise: " << res.body);
    REQUIRE(res.status == 200);
    CHECK(word_count(text_of(res)) <= 4);  // nothing absurd (a hallucinated sentence or a loop)
  });

  with_bystander(server, "0.1 s", [&] {
    std::vector<float> tiny(goforward.samples.begin() + rate / 2,
                            goforward.samples.begin() + rate / 2 + rate / 10);
    auto res = transcribe(client, wav_bytes(tiny, rate));
    INFO("0.1 s: " << res.body);
    REQUIRE(res.status == 200);
    CHECK(word_count(text_of(res)) <= 2);
  });

  with_bystander(server, "8 kHz", [&] {
    // 8 kHz telephone-band input (resampled by the server's decoder).
    auto res = transcribe(client, speech_file("librispeech_1272-128104-0004_8k.wav"));
    INFO("8 kHz: " << res.body);
    REQUIRE(res.status == 200);
    const auto e = normalized_errors(
        "LINNELL'S PICTURES ARE A SORT OF UP GUARDS AND AT EM PAINTINGS AND MASON'S EXQUISITE "
        "IDYLLS ARE AS NATIONAL AS A JINGO POEM MISTER BIRKET FOSTER'S LANDSCAPES SMILE AT ONE "
        "MUCH IN THE SAME WAY THAT MISTER CARKER USED TO FLASH HIS TEETH AND MISTER JOHN COLLIER "
        "GIVES HIS SITTER A CHEERFUL SLAP ON THE BACK BEFORE HE SAYS LIKE A SHAMPOOER IN A "
        "TURKISH BATH NEXT MAN",
        text_of(res));
    WARN("8 kHz recording: WER " << e.rate() * 100 << "%: " << text_of(res));
    CHECK(e.rate() <= 0.3);
  });

  with_bystander(server, "stereo", [&] {
    // Left: the recording; right: the same at half the level (the decoder averages them).
    std::vector<float> stereo;
    for (float s : goforward.samples) {
      stereo.push_back(s);
      stereo.push_back(s * 0.5f);
    }
    auto res = transcribe(client, wav_bytes(stereo, rate, 2));
    INFO("stereo: " << res.body);
    REQUIRE(res.status == 200);
    CHECK(normalize_english(text_of(res)) == kGoForward);
  });

  with_bystander(server, "truncated WAVs", [&] {
    const std::string wav = speech_file("jfk.wav");
    // Cut in the middle of the data: the header promises more than there is. Either the
    // samples that are there are recognised, or the upload is refused as malformed.
    auto res = transcribe(client, wav.substr(0, wav.size() / 2));
    INFO("cut in the data: " << res.status << " " << res.body);
    if (res.status == 200) {
      CHECK_THAT(normalize_english(text_of(res)), Catch::Contains("my fellow americans"));
    } else {
      CHECK((res.status == 400 || res.status == 415));
      check_error_mentions(res, res.status, "file");
    }
    // Cut inside the header (the fmt chunk): nothing decodable.
    for (std::size_t cut : {std::size_t{12}, std::size_t{30}}) {
      res = transcribe(client, wav.substr(0, cut));
      INFO("cut at byte " << cut << ": " << res.status << " " << res.body);
      CHECK((res.status == 400 || res.status == 415));
      check_error_mentions(res, res.status, "file");
    }
  });

  with_bystander(server, "10 minutes of audio", [&] {
    // Just under asr.max_audio_seconds (600): the 16 kHz recordings, one every 45 s, over a
    // faint noise floor (594 s in all). Only the speech is recognised (the VAD drops the rest),
    // so this costs about a minute of speech, and every recording must come back, at its time.
    // (jfk.wav repeated for 10 minutes would cost ten times more: the VAD keeps it as one
    // stream of 30 s windows, each window repeats its sentence, and every window then exceeds
    // the compression-ratio threshold and is decoded again at every fallback temperature.)
    const double spacing = 45;
    const std::size_t total = 594 * rate;
    std::vector<float> long_audio(total);
    std::mt19937 rng(11);
    std::normal_distribution<float> floor_noise(0.0f, 0.001f);
    for (float& s : long_audio) s = floor_noise(rng);
    std::string reference;
    std::vector<std::pair<double, double>> placed;  // [start, end) seconds of each recording
    for (const Clip& clip : speech_clips()) {
      const auto wav = talkserve::test::read_wav_pcm16(speech_path(clip.file));
      if (wav.sample_rate != rate) continue;  // the 8 kHz and 22.05 kHz ones
      const auto at = static_cast<std::size_t>((placed.size() * spacing + 1) * rate);
      REQUIRE(at + wav.samples.size() <= total);
      for (std::size_t i = 0; i < wav.samples.size(); ++i) long_audio[at + i] += wav.samples[i];
      placed.emplace_back(at / double(rate), (at + wav.samples.size()) / double(rate));
      reference += " " + clip.transcript;
    }
    REQUIRE(placed.size() == 13);
    const auto t0 = std::chrono::steady_clock::now();
    auto res = transcribe(client, wav_bytes(long_audio, rate), "verbose_json",
                          {{"timestamp_granularities[]", "segment", {}}});
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    INFO("10 min: " << res.status << " " << res.body.substr(0, 4000));
    REQUIRE(res.status == 200);
    const json j = res.json();
    const std::string text = j["text"];
    CHECK(j["duration"].get<double>() == Approx(594.0).margin(0.1));
    CHECK(!text.empty());
    const auto e = normalized_errors(reference, text);
    WARN("594 s upload (13 recordings, " << placed.back().second - placed.front().first
                                         << " s span) transcribed in " << seconds << " s: WER "
                                         << e.rate() * 100 << "%, " << j["segments"].size()
                                         << " segments");
    CHECK(e.rate() <= 0.2);
    // Segments are in clip time: each lies within one recording, and each recording has one.
    std::vector<int> hits(placed.size(), 0);
    double prev = 0;
    for (const auto& seg : j["segments"]) {
      const double start = seg["start"], end = seg["end"];
      INFO(seg.dump());
      CHECK(start >= prev - 1e-6);
      prev = end;
      bool inside = false;
      for (std::size_t k = 0; k < placed.size(); ++k) {
        if (start >= placed[k].first - 0.5 && end <= placed[k].second + 0.5) {
          ++hits[k];
          inside = true;
        }
      }
      CHECK(inside);
    }
    for (std::size_t k = 0; k < placed.size(); ++k) {
      INFO("recording " << k << " at " << placed[k].first << " s");
      CHECK(hits[k] >= 1);
    }
  });

  // The server is still healthy and quick.
  auto res = transcribe(client, speech_file("pocketsphinx_goforward.wav"));
  CHECK(res.status == 200);
  CHECK(normalize_english(text_of(res)) == kGoForward);
}

TEST_CASE("whisper: verbose_json segments and words, srt and vtt captions, prompt and language",
          "[speech][asr][whisper][formats]") {
  Talkserve server(whisper_server());
  auto client = server.client(120s);
  const std::string jfk = speech_file("jfk.wav");

  // verbose_json with both granularities: Whisper's own segments with its measures.
  auto res = transcribe(client, jfk, "verbose_json",
                        {{"timestamp_granularities[]", "word", {}},
                         {"timestamp_granularities[]", "segment", {}}});
  INFO(res.body);
  REQUIRE(res.status == 200);
  const json j = res.json();
  CHECK(j["task"] == "transcribe");
  CHECK(j["language"] == "english");
  CHECK(j["duration"].get<double>() == Approx(11.0).margin(0.1));
  CHECK(normalized_errors("and so my fellow americans ask not what your country can do for you "
                          "ask what you can do for your country",
                          j["text"].get<std::string>())
            .errors() <= 2);
  REQUIRE(j["segments"].is_array());
  REQUIRE(!j["segments"].empty());
  double prev_end = 0;
  std::string joined;
  for (const auto& s : j["segments"]) {
    INFO(s.dump());
    const double start = s["start"], end = s["end"];
    CHECK(start >= prev_end - 1e-6);
    CHECK(end > start);
    CHECK(end <= 11.0 + 0.05);
    prev_end = end;
    CHECK(!s["tokens"].empty());
    for (const auto& t : s["tokens"]) CHECK(t.is_number_integer());
    CHECK(s["avg_logprob"].get<double>() <= 0.0);
    CHECK(s["avg_logprob"].get<double>() > -1.0);  // confident on clear speech
    CHECK(s["temperature"].get<double>() >= 0.0);
    CHECK(s["compression_ratio"].get<double>() > 0.0);
    CHECK(s["no_speech_prob"].get<double>() >= 0.0);
    CHECK(s["no_speech_prob"].get<double>() <= 1.0);
    joined += s["text"].get<std::string>();
  }
  CHECK(normalize_english(joined) == normalize_english(j["text"].get<std::string>()));
  REQUIRE(j["words"].is_array());
  CHECK(j["words"].size() >= 18);
  double prev = 0;
  for (const auto& w : j["words"]) {
    INFO(w.dump());
    CHECK(!w["word"].get<std::string>().empty());
    CHECK(w["start"].get<double>() >= prev - 1e-6);
    CHECK(w["end"].get<double>() >= w["start"].get<double>());
    prev = w["end"].get<double>();
  }
  CHECK(prev <= 11.05);

  // srt: numbered from 1, HH:MM:SS,mmm, in order; vtt: the same cues with HH:MM:SS.mmm.
  res = transcribe(client, jfk, "srt");
  REQUIRE(res.status == 200);
  INFO(res.body);
  const auto srt = parse_captions(res.body, false);
  REQUIRE(!srt.empty());
  double last = 0;
  std::string srt_text;
  for (std::size_t i = 0; i < srt.size(); ++i) {
    CHECK(srt[i].number == static_cast<int>(i) + 1);
    CHECK(srt[i].start >= last - 1e-6);
    last = srt[i].end;
    srt_text += " " + srt[i].text;
  }
  CHECK(last <= 11.05);
  CHECK(normalize_english(srt_text) == normalize_english(j["text"].get<std::string>()));
  res = transcribe(client, jfk, "vtt");
  REQUIRE(res.status == 200);
  INFO(res.body);
  const auto vtt = parse_captions(res.body, true);
  REQUIRE(vtt.size() == srt.size());
  for (std::size_t i = 0; i < vtt.size(); ++i) {
    CHECK(vtt[i].start == Approx(srt[i].start).margin(0.0011));
    CHECK(vtt[i].end == Approx(srt[i].end).margin(0.0011));
    CHECK(vtt[i].text == srt[i].text);
  }

  // language: en works (and any region), de is refused: tiny.en knows English only.
  const std::string goforward = speech_file("pocketsphinx_goforward.wav");
  for (const std::string lang : {"en", "EN", "en-US"}) {
    res = transcribe(client, goforward, "verbose_json", {{"language", lang, {}}});
    INFO("language " << lang << ": " << res.body);
    REQUIRE(res.status == 200);
    CHECK(res.json()["language"] == "english");
    CHECK(normalize_english(text_of(res)) == kGoForward);
  }
  res = transcribe(client, goforward, "json", {{"language", "de", {}}});
  check_error(res, 400, "invalid_request_error", "language");
  CHECK(res.json()["error"]["param"] == "language");

  // prompt: the previous-text prompt is accepted (and does not derail the transcript); an
  // over-long one is refused naming the field.
  res = transcribe(client, goforward, "json",
                   {{"prompt", "Robot commands: go forward, turn left, stop.", {}}});
  INFO(res.body);
  REQUIRE(res.status == 200);
  CHECK(normalize_english(text_of(res)) == kGoForward);
  // The prompt reaches the decoder: its spellings of names the model does not know (without
  // it: "Lenell's", "Burkett") show up in the transcript.
  res = transcribe(client, speech_file("librispeech_1272-128104-0004_8k.wav"), "json",
                   {{"prompt", "Linnell, Birket Foster, Carker, John Collier.", {}}});
  REQUIRE(res.status == 200);
  WARN("with a prompt of names: " << text_of(res));
  const auto prompted = talkserve::test::english_words(text_of(res));
  CHECK((std::count(prompted.begin(), prompted.end(), "linnell's") +
         std::count(prompted.begin(), prompted.end(), "birket")) >= 1);
  res = transcribe(client, goforward, "json", {{"prompt", std::string(5000, 'a'), {}}});
  check_error_mentions(res, 400, "prompt");
}

TEST_CASE("whisper: a corrupt model file stops the start with exit 2 naming it and its sha256",
          "[speech][asr][whisper][lifecycle]") {
  // A models folder of links to the real files, but whisper-tiny-en/config.json rewritten.
  namespace fs = std::filesystem;
  talkserve::test::TempDir tmp;
  const fs::path real(talkserve::itest::models_dir());
  const fs::path models = tmp.path() / "models";
  fs::create_directories(models / "whisper-tiny-en");
  for (const auto& e : fs::directory_iterator(real)) {
    if (e.path().filename() != "whisper-tiny-en") fs::create_symlink(e.path(), models / e.path().filename());
  }
  for (const auto& e : fs::directory_iterator(real / "whisper-tiny-en")) {
    if (e.path().filename() != "config.json") fs::create_symlink(e.path(), models / "whisper-tiny-en" / e.path().filename());
  }
  std::ofstream(models / "whisper-tiny-en" / "config.json") << "{\"model_type\": \"whisper\"}\n";

  auto args = talkserve::itest::base_args();
  args.insert(args.end(), {"--set", "server.models_dir=\"" + models.string() + "\""});
  const auto r = talkserve::itest::run_to_exit(talkserve::itest::talkserve_binary(), args, std::chrono::seconds(60));
  INFO("stderr: " << r.err);
  CHECK(r.exit_status == 2);
  CHECK_THAT(r.err, Catch::Contains("whisper-tiny-en/config.json"));
  CHECK_THAT(r.err, Catch::Contains("sha256"));
  // The expected checksum is the manifest's, so the message says what the file should be.
  std::ifstream manifest(real / "manifest.toml");
  const std::string text((std::istreambuf_iterator<char>(manifest)), std::istreambuf_iterator<char>());
  const auto at = text.find("path = \"config.json\"", text.find("dir = \"whisper-tiny-en\""));
  REQUIRE(at != std::string::npos);
  const auto sha_at = text.find("sha256 = \"", at) + 10;
  CHECK_THAT(r.err, Catch::Contains(text.substr(sha_at, 64)));
}
