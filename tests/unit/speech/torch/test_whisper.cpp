// Whisper on the real whisper-tiny-en checkpoint (<models>/whisper-tiny-en): the log-mel front
// end, greedy tokens and first-step logits against the independent Python reference
// (tests/reference/whisper_reference.py) for every clip of the shared speech test data, batch
// and thread invariance of the shared decode loop, silence, cancellation, timestamps and word
// times, prompts, and load errors.

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include "support/data_paths.hpp"
#include "support/temp_dir.hpp"
#include "talkserve/media/audio.hpp"
#include "talkserve/speech/whisper.hpp"

using namespace talkserve::speech;
using talkserve::test::TempDir;
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kRate = 16000;

std::string model_dir() { return talkserve::test::models_dir() + "/whisper-tiny-en"; }

std::string source_dir() {
  const char* s = std::getenv("TALKSERVE_SOURCE_DIR");
  if (s == nullptr || *s == '\0') throw std::runtime_error("test: TALKSERVE_SOURCE_DIR is not set (run via ctest)");
  return s;
}

// float32 throughout: the reference's precision, and the same results on every CPU ("auto"
// picks bfloat16 encoder matmuls on CPUs with AVX512-BF16; see the bfloat16 test case).
WhisperOptions base_options() {
  WhisperOptions o;
  o.path = model_dir();
  o.threads = 2;
  o.encoder_dtype = "float32";
  return o;
}

// The recogniser with its default options (timestamps, word times, temperature fallback),
// loaded once per process.
WhisperAsr& default_asr() {
  static const std::unique_ptr<WhisperAsr> asr = WhisperAsr::load(base_options());
  return *asr;
}

// Greedy without timestamps, as the reference decodes.
WhisperAsr& plain_asr() {
  static const std::unique_ptr<WhisperAsr> asr = [] {
    WhisperOptions o = base_options();
    o.timestamps = false;
    o.word_timestamps = false;
    o.temperatures = {0.0};
    return WhisperAsr::load(o);
  }();
  return *asr;
}

bool cpu_has_bf16() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  return __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

// A clip of the shared test data as 16 kHz mono float through the media layer (FFmpeg), at
// most the first 30 s.
std::vector<float> decode_clip(const std::string& name) {
  const std::string bytes = talkserve::test::read_binary_file(talkserve::test::speech_data_dir() + "/" + name);
  auto audio = talkserve::media::decode_audio(
      std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
  REQUIRE(audio.sample_rate == static_cast<int>(kRate));
  if (audio.samples.size() > 30 * kRate) audio.samples.resize(30 * kRate);
  return std::move(audio.samples);
}

std::vector<std::string> speech_clips() {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(talkserve::test::speech_data_dir())) {
    if (e.path().extension() == ".wav") names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<float> slice(const std::vector<float>& audio, double from_s, double seconds) {
  const auto b = std::min(audio.size(), static_cast<std::size_t>(from_s * kRate));
  const auto n = std::min(static_cast<std::size_t>(seconds * kRate), audio.size() - b);
  return std::vector<float>(audio.begin() + static_cast<std::ptrdiff_t>(b),
                            audio.begin() + static_cast<std::ptrdiff_t>(b + n));
}

void write_f32(const fs::path& path, const std::vector<float>& samples) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(samples.data()), static_cast<std::streamsize>(samples.size() * sizeof(float)));
  REQUIRE(out.good());
}

std::vector<float> read_f32(const fs::path& path) {
  const std::string bytes = talkserve::test::read_binary_file(path.string());
  std::vector<float> out(bytes.size() / sizeof(float));
  std::memcpy(out.data(), bytes.data(), out.size() * sizeof(float));
  return out;
}

// A python3 that imports torch and numpy (Debian's python3-torch, python3-numpy; installed
// by scripts/setup.sh). TALKSERVE_PYTHON overrides; /usr/bin/python3 comes before a `python3`
// on PATH, which may be another installation (pyenv) without Debian's packages.
std::string python_with_torch() {
  std::vector<std::string> candidates;
  if (const char* p = std::getenv("TALKSERVE_PYTHON"); p != nullptr && *p != '\0') candidates.emplace_back(p);
  candidates.emplace_back("/usr/bin/python3");
  candidates.emplace_back("python3");
  for (const std::string& c : candidates) {
    const std::string cmd = "'" + c + "' -c 'import torch, numpy' >/dev/null 2>&1";
    if (std::system(cmd.c_str()) == 0) return c;
  }
  return {};
}

std::string require_python() {
  const std::string py = python_with_torch();
  if (py.empty()) {
    FAIL("no python3 with torch and numpy (tried $TALKSERVE_PYTHON, /usr/bin/python3, python3): the Whisper parity "
         "tests run tests/reference/whisper_reference.py; scripts/setup.sh installs python3-torch and python3-numpy");
  }
  return py;
}

// Runs a shell command and returns its standard output; fails the test on a non-zero exit
// with the command's standard error.
std::string run_command(const std::string& cmd, const fs::path& stderr_file) {
  const std::string full = cmd + " 2>'" + stderr_file.string() + "'";
  FILE* pipe = popen(full.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string out;
  char buf[1 << 16];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  const int status = pclose(pipe);
  if (status != 0) {
    std::string err;
    try {
      err = talkserve::test::read_binary_file(stderr_file.string());
    } catch (...) {
    }
    FAIL("command failed (status " << status << "): " << cmd << "\n" << err);
  }
  return out;
}

std::string normalise(const std::string& text) {
  std::string out;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u)) {
      out += static_cast<char>(std::tolower(u));
    } else if (std::isspace(u) && !out.empty() && out.back() != ' ') {
      out += ' ';
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(' ');
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(' ') - b + 1);
}

AsrInput input_of(std::vector<float> samples) {
  AsrInput in;
  in.samples = std::move(samples);
  return in;
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  float worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Parity with the Python reference

TEST_CASE("whisper log-mel matches the reference front end", "[whisper][model][parity]") {
  const std::string py = require_python();
  WhisperAsr& asr = plain_asr();
  REQUIRE(asr.mel_bins() == 80);
  TempDir tmp;
  // Speech, a clip shorter than one STFT window's reflection pad, and silence (all at the floor).
  const std::vector<std::pair<std::string, std::vector<float>>> cases{
      {"jfk", decode_clip("jfk.wav")},
      {"ljspeech", decode_clip("ljspeech_LJ050-0131.wav")},
      {"short", slice(decode_clip("pocketsphinx_goforward.wav"), 0.5, 0.01)},
      {"zeros", std::vector<float>(kRate, 0.0f)},
  };
  // The reference's own log_mel() (what --dump-mel writes), without loading its model.
  std::string script = "import sys, numpy as np; sys.path.insert(0, sys.argv[1]); import whisper_reference as w\n"
                       "for a in sys.argv[2:]: w.log_mel(np.fromfile(a + '.f32', '<f4').astype(np.float64))"
                       ".astype('<f4').tofile(a + '.mel')\n";
  std::string cmd = "'" + py + "' -c \"" + script + "\" '" + source_dir() + "/tests/reference'";
  for (const auto& [name, samples] : cases) {
    write_f32(tmp.path() / (name + ".f32"), samples);
    cmd += " '" + (tmp.path() / name).string() + "'";
  }
  run_command(cmd, tmp.path() / "stderr.txt");
  for (const auto& [name, samples] : cases) {
    const std::vector<float> ref = read_f32(tmp.path() / (name + ".mel"));
    const std::vector<float> mine = asr.log_mel(samples);
    REQUIRE(mine.size() == 80u * 3000u);
    REQUIRE(ref.size() == mine.size());
    const float diff = max_abs_diff(mine, ref);
    std::cout << "whisper mel parity " << name << ": max abs diff " << diff << "\n";
    INFO(name << ": max abs diff " << diff);
    CHECK(diff < 1e-3f);
  }
}

TEST_CASE("whisper greedy tokens and first logits match the reference on every speech clip",
          "[whisper][model][parity]") {
  const std::string py = require_python();
  const auto names = speech_clips();
  REQUIRE(names.size() >= 15);
  TempDir tmp;
  std::vector<std::vector<float>> audio;
  for (const auto& n : names) {
    audio.push_back(decode_clip(n));
    write_f32(tmp.path() / (n + ".f32"), audio.back());
  }
  const auto t0 = std::chrono::steady_clock::now();
  const std::string out = run_command("'" + py + "' '" + source_dir() + "/tests/reference/whisper_reference.py' --model '" +
                                          model_dir() + "' --batch-dir '" + tmp.path().string() + "' --first-logits",
                                      tmp.path() / "stderr.txt");
  const double ref_seconds = seconds_since(t0);
  const nlohmann::json ref = nlohmann::json::parse(out);

  WhisperAsr& asr = plain_asr();
  std::vector<AsrInput> batch;
  for (const auto& a : audio) batch.push_back(input_of(a));
  const auto t1 = std::chrono::steady_clock::now();
  const auto windows = asr.transcribe_windows(batch);
  const double cpp_seconds = seconds_since(t1);
  REQUIRE(windows.size() == names.size());
  std::cout << "whisper parity: reference " << ref_seconds << " s, C++ batch of " << names.size() << " "
            << cpp_seconds << " s\n";

  int agree = 0;
  for (std::size_t i = 0; i < names.size(); ++i) {
    const std::string key = names[i] + ".f32";
    INFO(names[i]);
    REQUIRE(ref.contains(key));
    const auto ref_tokens = ref[key]["tokens"].get<std::vector<int>>();
    const auto ref_logits = ref[key]["first_logits"].get<std::vector<float>>();
    REQUIRE(windows[i].size() == 1);
    const WhisperWindow& w = windows[i][0];
    const std::vector<float> logits = asr.first_logits(audio[i], /*timestamps=*/false);
    REQUIRE(logits.size() == static_cast<std::size_t>(asr.vocab_size()));
    const float diff = max_abs_diff(logits, ref_logits);
    // Where the token lists part, for the report.
    std::size_t same = 0;
    while (same < w.tokens.size() && same < ref_tokens.size() && w.tokens[same] == ref_tokens[same]) ++same;
    agree += w.tokens == ref_tokens;
    std::cout << "whisper parity " << names[i] << ": tokens " << w.tokens.size() << " (ref " << ref_tokens.size()
              << ", common prefix " << same << ")" << (w.tokens == ref_tokens ? " identical" : " DIFFER")
              << ", first logits max abs diff " << diff << "\n";
    INFO("C++: " << w.text);
    INFO("ref: " << ref[key]["text"].get<std::string>());
    CHECK(w.tokens == ref_tokens);
    CHECK(trim(w.text) == trim(ref[key]["text"].get<std::string>()));
    CHECK(diff < 1e-3f);
    CHECK(w.temperature == 0.0);
  }
  std::cout << "whisper parity: " << agree << "/" << names.size() << " clips with identical tokens\n";

  // The bfloat16 encoder ("auto" on CPUs with AVX512-BF16; elsewhere emulated and slow, so
  // only where it is native): close to the reference, not identical.
  if (!cpu_has_bf16()) {
    WARN("no AVX512-BF16 on this CPU: the bfloat16 encoder is not compared");
    return;
  }
  WhisperOptions o = base_options();
  o.timestamps = false;
  o.word_timestamps = false;
  o.temperatures = {0.0};
  o.encoder_dtype = "bfloat16";
  const auto bf16 = WhisperAsr::load(o);
  std::vector<AsrInput> again;
  for (const auto& a : audio) again.push_back(input_of(a));
  const auto t2 = std::chrono::steady_clock::now();
  const auto bf16_windows = bf16->transcribe_windows(again);
  const double bf16_seconds = seconds_since(t2);
  int bf16_agree = 0;
  float bf16_worst = 0;
  for (std::size_t i = 0; i < names.size(); ++i) {
    const std::string key = names[i] + ".f32";
    const auto ref_tokens = ref[key]["tokens"].get<std::vector<int>>();
    REQUIRE(bf16_windows[i].size() == 1);
    const WhisperWindow& w = bf16_windows[i][0];
    bf16_agree += w.tokens == ref_tokens;
    if (w.tokens != ref_tokens) {
      std::cout << "whisper parity bfloat16 " << names[i] << " differs: \"" << trim(w.text) << "\" vs \""
                << trim(ref[key]["text"].get<std::string>()) << "\"\n";
    }
    if (i % 5 == 0) {  // a few first-logit comparisons (each is an encoder forward)
      const float diff = max_abs_diff(bf16->first_logits(audio[i], false), ref[key]["first_logits"].get<std::vector<float>>());
      bf16_worst = std::max(bf16_worst, diff);
    }
  }
  std::cout << "whisper parity bfloat16: " << bf16_agree << "/" << names.size() << " clips with identical tokens in "
            << bf16_seconds << " s, first logits max abs diff " << bf16_worst << "\n";
  CHECK(bf16_agree >= static_cast<int>(names.size()) - 2);
  CHECK(bf16_worst < 0.5f);
}

TEST_CASE("whisper timestamp decoding and word times match the reference rules",
          "[whisper][model][parity][timestamps]") {
  // tests/unit/speech/torch/whisper_timestamp_reference.py: openai/whisper's timestamp rules
  // and find_alignment on the reference network.
  const std::string py = require_python();
  WhisperOptions o = base_options();
  o.temperatures = {0.0};  // the helper has no fallback
  const auto asr = WhisperAsr::load(o);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-0.003f, 0.003f);
  std::vector<float> noise(4 * kRate);
  for (float& x : noise) x = u(rng);
  const std::vector<std::pair<std::string, std::vector<float>>> cases{
      {"jfk", decode_clip("jfk.wav")},
      {"goforward", decode_clip("pocketsphinx_goforward.wav")},
      {"cards5", decode_clip("pocketsphinx_cards_005.wav")},
      {"austen0890", decode_clip("librivox_sense_and_sensibility_01_austen_64kb-0890.wav")},
      {"libri", decode_clip("librispeech_1272-141231-0002.wav")},
      {"zeros", std::vector<float>(3 * kRate, 0.0f)},
      {"noise", noise},
  };
  TempDir tmp;
  std::vector<AsrInput> batch;
  for (const auto& [name, samples] : cases) {
    write_f32(tmp.path() / (name + ".f32"), samples);
    batch.push_back(input_of(samples));
  }
  const std::string out = run_command("'" + py + "' '" + source_dir() +
                                          "/tests/unit/speech/torch/whisper_timestamp_reference.py' --model '" +
                                          model_dir() + "' --batch-dir '" + tmp.path().string() + "'",
                                      tmp.path() / "stderr.txt");
  const nlohmann::json ref = nlohmann::json::parse(out);
  const auto windows = asr->transcribe_windows(batch);
  REQUIRE(windows.size() == cases.size());
  double worst_word = 0, worst_speech = 0;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const nlohmann::json& r = ref.at(cases[i].first + ".f32");
    REQUIRE(windows[i].size() == 1);
    const WhisperWindow& w = windows[i][0];
    INFO(cases[i].first << ": C++ \"" << w.text << "\", reference \"" << r["text"].get<std::string>() << "\"");
    CHECK(w.tokens == r["tokens"].get<std::vector<int>>());
    CHECK(w.avg_logprob == Approx(r["avg_logprob"].get<double>()).margin(2e-3));
    CHECK(w.no_speech_prob == Approx(r["no_speech_prob"].get<double>()).margin(1e-3));
    const bool skip = r["no_speech_prob"].get<double>() > 0.6 && r["avg_logprob"].get<double>() < -1.0;
    CHECK(w.skipped == skip);
    if (skip) {
      CHECK(w.result.text.empty());
      continue;
    }
    CHECK(w.result.text == trim(r["text"].get<std::string>()));
    const auto& words = r["words"];
    REQUIRE(w.result.words.size() == words.size());
    double worst = 0;
    for (std::size_t k = 0; k < words.size(); ++k) {
      const AsrWord& mine = w.result.words[k];
      CHECK(mine.word == words[k][0].get<std::string>());
      worst = std::max({worst, std::abs(mine.start - words[k][1].get<double>()),
                        std::abs(mine.end - words[k][2].get<double>())});
    }
    std::cout << "whisper timestamp parity " << cases[i].first << ": " << w.tokens.size() << " tokens, avg_logprob "
              << w.avg_logprob << " (ref " << r["avg_logprob"].get<double>() << "), word times max abs diff " << worst
              << " s\n";
    if (cases[i].first != "zeros") worst_speech = std::max(worst_speech, worst);
    worst_word = std::max(worst_word, worst);
  }
  // Word times: both sides softmax the alignment heads' raw scores over the clip's own frames;
  // a frame or two (20 ms each) of float noise in the DTW is allowed.
  CHECK(worst_speech <= 0.041);
  CHECK(worst_word <= 0.041);
}

TEST_CASE("whisper recognises the shared clips", "[whisper][model]") {
  // Not a parity check: the words the clips say (tiny.en gets these right).
  WhisperAsr& asr = default_asr();
  std::vector<AsrInput> batch;
  batch.push_back(input_of(decode_clip("jfk.wav")));
  batch.push_back(input_of(decode_clip("pocketsphinx_goforward.wav")));
  const auto r = asr.transcribe_batch(batch);
  REQUIRE(r.size() == 2);
  CHECK(normalise(r[0].text).find("ask not what your country can do for you") != std::string::npos);
  CHECK(normalise(r[1].text).find("go forward 10 meters") != std::string::npos);  // "Go forward 10 meters."
}

// ---------------------------------------------------------------------------------------------
// Batching

TEST_CASE("whisper gives the same text alone and in one batch and from concurrent callers", "[whisper][model][batch]") {
  WhisperAsr& asr = default_asr();
  const auto jfk = decode_clip("jfk.wav");
  const auto libri = decode_clip("librispeech_1272-141231-0002.wav");
  const auto libri8k = decode_clip("librispeech_1272-128104-0004_8k.wav");
  const auto lj = decode_clip("ljspeech_LJ050-0131.wav");
  const auto austen = decode_clip("librivox_sense_and_sensibility_01_austen_64kb-0870.wav");
  const auto austen2 = decode_clip("librivox_sense_and_sensibility_01_austen_64kb-0920.wav");
  const auto cards = decode_clip("pocketsphinx_cards_005.wav");
  const auto go = decode_clip("pocketsphinx_goforward.wav");
  // Sixteen clips of 1 to 10 s.
  const std::vector<std::vector<float>> clips{
      slice(jfk, 0.0, 4.0),     slice(jfk, 3.5, 7.5),       slice(libri, 0.0, 10.0),  slice(libri, 6.0, 3.2),
      slice(libri8k, 0.0, 6.5), slice(libri8k, 12.0, 9.0),  slice(libri8k, 22.0, 1.4), slice(lj, 0.0, 7.6),
      slice(lj, 2.0, 2.5),      slice(austen, 0.0, 7.1),    slice(austen, 3.0, 1.0),  slice(austen2, 0.5, 5.5),
      slice(cards, 0.0, 3.5),   slice(cards, 1.2, 1.7),     slice(go, 0.0, 2.78),     slice(libri, 3.0, 5.0),
  };
  REQUIRE(clips.size() == 16);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<WhisperWindow> solo;
  for (const auto& c : clips) {
    std::vector<AsrInput> one{input_of(c)};
    auto w = asr.transcribe_windows(one);
    REQUIRE(w.size() == 1);
    REQUIRE(w[0].size() == 1);
    solo.push_back(std::move(w[0][0]));
  }
  const double solo_s = seconds_since(t0);

  const auto t1 = std::chrono::steady_clock::now();
  std::vector<AsrInput> batch;
  for (const auto& c : clips) batch.push_back(input_of(c));
  const auto batched = asr.transcribe_windows(batch);
  const double batch_s = seconds_since(t1);
  REQUIRE(batched.size() == clips.size());

  const auto t2 = std::chrono::steady_clock::now();
  std::vector<WhisperWindow> concurrent(clips.size());
  std::vector<std::thread> threads;
  std::mutex errors_mutex;
  std::vector<std::string> errors;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      try {
        for (std::size_t i = static_cast<std::size_t>(t); i < clips.size(); i += 4) {
          std::vector<AsrInput> one{input_of(clips[i])};
          auto w = asr.transcribe_windows(one);
          if (w.size() != 1 || w[0].size() != 1) throw std::runtime_error("not one window");
          concurrent[i] = std::move(w[0][0]);
        }
      } catch (const std::exception& e) {
        std::lock_guard lock(errors_mutex);
        errors.push_back(e.what());
      }
    });
  }
  for (auto& t : threads) t.join();
  const double concurrent_s = seconds_since(t2);
  REQUIRE(errors.empty());
  std::cout << "whisper batch invariance: 16 clips alone " << solo_s << " s, one batch " << batch_s
            << " s, 4 threads " << concurrent_s << " s; max rows per step " << asr.stats().max_rows << "\n";

  std::size_t nonempty = 0;
  for (std::size_t i = 0; i < clips.size(); ++i) {
    INFO("clip " << i << " (" << clips[i].size() / static_cast<double>(kRate) << " s): alone \"" << solo[i].text
                 << "\" at T=" << solo[i].temperature << ", batched \"" << batched[i][0].text << "\" at T="
                 << batched[i][0].temperature << ", concurrent \"" << concurrent[i].text << "\" at T="
                 << concurrent[i].temperature);
    REQUIRE(batched[i].size() == 1);
    CHECK(solo[i].text == batched[i][0].text);
    CHECK(solo[i].text == concurrent[i].text);
    CHECK(solo[i].tokens == batched[i][0].tokens);
    CHECK(solo[i].tokens == concurrent[i].tokens);
    nonempty += !solo[i].text.empty();
  }
  CHECK(nonempty >= 14);
  // The batch really was decoded together (windows join the loop as their encoder chunk of 8
  // finishes, between steps, so how many share one step depends on timing).
  CHECK(asr.stats().max_rows >= 4);
}

// Sampling (temperature > 0, what the fallback ladder ends in) is seeded per window from
// options.seed and a hash of the window's samples: the same audio sampled twice, or alone and
// in a batch, gets the same draws.
TEST_CASE("whisper: sampled decoding is reproducible for the same audio", "[whisper][model]") {
  WhisperOptions o = base_options();
  o.temperatures = {1.0};
  o.word_timestamps = false;
  const auto asr = WhisperAsr::load(o);
  const std::vector<std::vector<float>> clips{decode_clip("librispeech_1272-128104-0004_8k.wav"),
                                              decode_clip("librispeech_1272-141231-0002.wav")};
  std::vector<std::vector<int>> first, second;
  for (int round = 0; round < 2; ++round) {
    for (const auto& c : clips) {
      std::vector<AsrInput> one{input_of(c)};
      const auto w = asr->transcribe_windows(one);
      REQUIRE(w.size() == 1);
      REQUIRE(!w[0].empty());  // a window, and the ones it seeks on to
      std::vector<int> tokens;
      for (const auto& window : w[0]) tokens.insert(tokens.end(), window.tokens.begin(), window.tokens.end());
      (round == 0 ? first : second).push_back(tokens);
    }
  }
  for (std::size_t i = 0; i < clips.size(); ++i) {
    INFO("clip " << i);
    CHECK(first[i] == second[i]);
  }
}

// ---------------------------------------------------------------------------------------------
// Silence, tiny inputs, cancellation

TEST_CASE("whisper: quiet noise gives no text and silence or tiny inputs do not crash", "[whisper][model]") {
  WhisperAsr& asr = default_asr();
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-0.003f, 0.003f);
  std::vector<float> noise(4 * kRate);
  for (float& x : noise) x = u(rng);
  std::vector<AsrInput> batch;
  batch.push_back(input_of(std::vector<float>(3 * kRate, 0.0f)));       // 3 s of zeros
  batch.push_back(input_of(noise));                                     // quiet white noise
  batch.push_back(input_of(slice(decode_clip("jfk.wav"), 1.0, 0.1)));  // 0.1 s of speech
  batch.push_back(input_of({}));                                        // nothing
  batch.push_back(input_of(std::vector<float>(1, 0.5f)));               // one sample
  const auto windows = asr.transcribe_windows(batch);
  REQUIRE(windows.size() == batch.size());
  REQUIRE(windows[1].size() == 1);
  {
    const WhisperWindow& w = windows[1][0];
    INFO("noise: \"" << w.text << "\", no_speech_prob " << w.no_speech_prob << ", avg_logprob " << w.avg_logprob
                     << ", temperature " << w.temperature << ", skipped " << w.skipped);
    CHECK(w.skipped);
    CHECK(w.text.empty());
    CHECK(w.result.text.empty());
    CHECK(w.result.words.empty());
    CHECK(w.result.segments.empty());
  }
  // Zeros: recognised as no speech by the model (see the [!mayfail] case below for the text).
  REQUIRE(windows[0].size() == 1);
  CHECK(windows[0][0].no_speech_prob > 0.6);
  REQUIRE(windows[2].size() == 1);
  REQUIRE(windows[4].size() == 1);
  CHECK(windows[3].empty());  // no samples: no window, an empty result
  for (const auto& w : {windows[2][0], windows[4][0]}) {
    for (const AsrWord& word : w.result.words) {
      CHECK(word.start >= 0);
      CHECK(word.end <= 0.1 + 1e-9);
    }
  }
}

// Known to fail: whisper-tiny.en says " you" (avg_logprob -0.69 > -1, so the no-speech rule
// does not drop it though no_speech_prob is 0.91) over 3 s of zeros padded with zeros to 30 s,
// exactly as the reference decoder does (the timestamp parity case above checks that). openai's
// transcribe() pads the log-mel of the clip with zeros instead, and there the window is skipped
// (avg_logprob -1.03). Remove [!mayfail] once the front end or the no-speech rule changes.
TEST_CASE("whisper: 3 s of digital silence give no text", "[whisper][model][!mayfail]") {
  WhisperAsr& asr = default_asr();
  std::vector<AsrInput> batch{input_of(std::vector<float>(3 * kRate, 0.0f))};
  const auto windows = asr.transcribe_windows(batch);
  REQUIRE(windows.size() == 1);
  REQUIRE(windows[0].size() == 1);
  const WhisperWindow& w = windows[0][0];
  INFO("\"" << w.text << "\", no_speech_prob " << w.no_speech_prob << ", avg_logprob " << w.avg_logprob
             << ", temperature " << w.temperature);
  CHECK(w.result.text.empty());
  CHECK(w.skipped);
}

TEST_CASE("whisper: a cancelled input returns an empty result promptly", "[whisper][model][cancel]") {
  WhisperAsr& asr = default_asr();
  const auto long_clip = decode_clip("librispeech_1272-128104-0004_8k.wav");  // 29.4 s of speech
  SECTION("cancelled before the call; its neighbour is still recognised") {
    auto flag = std::make_shared<std::atomic<bool>>(true);
    std::vector<AsrInput> batch;
    batch.push_back(input_of(long_clip));
    batch.back().cancelled = flag;
    batch.push_back(input_of(decode_clip("pocketsphinx_goforward.wav")));
    const auto r = asr.transcribe_batch(batch);
    REQUIRE(r.size() == 2);
    CHECK(r[0].text.empty());
    CHECK(r[0].segments.empty());
    CHECK(normalise(r[1].text).find("forward") != std::string::npos);
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<AsrInput> only{input_of(long_clip)};
    only.back().cancelled = flag;
    CHECK(asr.transcribe_batch(only)[0].text.empty());
    CHECK(seconds_since(t0) < 0.5);
  }
  SECTION("cancelled while it decodes") {
    // The flag is set once the decode loop has run a few steps of this window (the clip takes
    // about a hundred), so the cancellation lands mid-decode, not during the encoder forward.
    auto flag = std::make_shared<std::atomic<bool>>(false);
    std::vector<AsrInput> batch{input_of(long_clip)};
    batch.back().cancelled = flag;
    const std::uint64_t steps0 = asr.stats().steps;
    std::atomic<bool> returned{false};
    std::thread canceller([&] {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      while (!returned.load() && asr.stats().steps < steps0 + 5 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      flag->store(true);
    });
    const auto r = asr.transcribe_windows(batch);
    returned = true;
    canceller.join();
    const std::uint64_t steps = asr.stats().steps - steps0;
    std::cout << "whisper cancel: the window left the decode loop after " << steps << " steps\n";
    REQUIRE(r.size() == 1);
    REQUIRE(r[0].size() == 1);
    CHECK(r[0][0].result.text.empty());
    CHECK(steps >= 5);
    CHECK(steps < 20);
  }
}

// ---------------------------------------------------------------------------------------------
// Timestamps, words, prompts

TEST_CASE("whisper timestamps: segments and word times of jfk.wav", "[whisper][model][timestamps]") {
  WhisperAsr& asr = default_asr();
  std::vector<AsrInput> batch{input_of(decode_clip("jfk.wav"))};
  const auto windows = asr.transcribe_windows(batch);
  REQUIRE(windows.size() == 1);
  REQUIRE(windows[0].size() == 1);
  const WhisperWindow& w = windows[0][0];
  const AsrResult& r = w.result;
  INFO("text: " << r.text);
  CHECK(normalise(r.text).find("ask not what your country can do for you") != std::string::npos);
  CHECK(normalise(r.text).find("ask what you can do for your country") != std::string::npos);
  // The window's tokens begin with a timestamp.
  REQUIRE(!w.tokens.empty());
  CHECK(w.tokens.front() > 50256);
  REQUIRE(!r.segments.empty());
  for (const AsrSegment& s : r.segments) std::cout << "whisper jfk segment [" << s.start << ", " << s.end << "]" << s.text << "\n";
  std::cout << "whisper jfk words:";
  for (const AsrWord& word : r.words) std::cout << " " << word.word << "@" << word.start << "-" << word.end;
  std::cout << "\n";
  double prev_start = -1, prev_end = 0;
  std::string joined;
  for (const AsrSegment& s : r.segments) {
    INFO("segment [" << s.start << ", " << s.end << "] " << s.text);
    CHECK(s.start >= 0.0);
    CHECK(s.end <= 11.1);
    CHECK(s.start < s.end);
    CHECK(s.start > prev_start);
    CHECK(s.start >= prev_end - 1e-9);
    CHECK(s.end > prev_end);
    CHECK(!s.text.empty());
    CHECK(!s.tokens.empty());
    prev_start = s.start;
    prev_end = s.end;
    joined += (joined.empty() ? "" : " ") + s.text;
  }
  CHECK(joined == r.text);
  // Words: monotone, inside the segments' span, the same words as the text.
  REQUIRE(r.words.size() >= 15);
  const double span_start = r.segments.front().start, span_end = r.segments.back().end;
  double prev_word_end = 0;
  std::string words;
  for (const AsrWord& word : r.words) {
    INFO("word \"" << word.word << "\" [" << word.start << ", " << word.end << "]");
    CHECK(word.start <= word.end);
    CHECK(word.start >= prev_word_end - 1e-9);
    CHECK(word.start >= span_start - 0.02);
    CHECK(word.end <= span_end + 0.02);
    prev_word_end = word.end;
    words += (words.empty() ? "" : " ") + word.word;
  }
  CHECK(normalise(words) == normalise(r.text));
  // "country" is said twice: the reference alignment (OpenAI's find_alignment) starts it at 6.02 s and 10.22 s.
  std::vector<double> country;
  for (const AsrWord& word : r.words) {
    if (normalise(word.word) == "country") country.push_back(word.start);
  }
  REQUIRE(country.size() == 2);
  CHECK(country[0] == Approx(6.0).margin(0.5));
  CHECK(country[1] == Approx(10.2).margin(0.5));
}

TEST_CASE("whisper: a prompt is accepted and the speech still recognised", "[whisper][model]") {
  WhisperAsr& asr = default_asr();
  std::vector<AsrInput> batch;
  batch.push_back(input_of(decode_clip("jfk.wav")));
  batch.back().prompt = "President Kennedy's inaugural address, January 1961.";
  batch.push_back(input_of(decode_clip("pocketsphinx_cards_005.wav")));
  batch.back().prompt = std::string(4000, 'x') + " cards: clubs, spades, hearts";  // far over the prompt budget
  const auto r = asr.transcribe_batch(batch);
  REQUIRE(r.size() == 2);
  INFO("jfk: " << r[0].text << "; cards: " << r[1].text);
  CHECK(normalise(r[0].text).find("what your country can do for you") != std::string::npos);
  CHECK(!r[1].text.empty());
  CHECK(r[0].text.find("inaugural") == std::string::npos);  // the prompt is not echoed
}

TEST_CASE("whisper: the model's identity", "[whisper][model]") {
  WhisperAsr& asr = default_asr();
  CHECK(asr.name() == "whisper");
  CHECK(asr.languages() == std::vector<std::string>{"en"});
  CHECK(!asr.multilingual());
  CHECK(asr.vocab_size() == 51864);
  CHECK(asr.mel_bins() == 80);
}

// ---------------------------------------------------------------------------------------------
// Load errors

namespace {

// A model directory whose files are symlinks to the real ones, but for `replaced`.
void link_model(const fs::path& dir, std::initializer_list<std::string> replaced) {
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(model_dir())) {
    const std::string name = e.path().filename().string();
    if (std::find(replaced.begin(), replaced.end(), name) != replaced.end()) continue;
    fs::create_symlink(fs::absolute(e.path()), dir / name);
  }
}

// A safetensors file of F32 tensors (zeros) with the given names and shapes.
void write_safetensors(const fs::path& path, const std::vector<std::pair<std::string, std::vector<std::int64_t>>>& tensors,
                       std::size_t drop_tail_bytes = 0) {
  nlohmann::json header = nlohmann::json::object();
  std::size_t offset = 0;
  for (const auto& [name, shape] : tensors) {
    std::size_t n = 1;
    for (auto d : shape) n *= static_cast<std::size_t>(d);
    header[name] = {{"dtype", "F32"}, {"shape", shape}, {"data_offsets", {offset, offset + 4 * n}}};
    offset += 4 * n;
  }
  std::string h = header.dump();
  while (h.size() % 8) h += ' ';
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[static_cast<std::size_t>(i)] = static_cast<char>((h.size() >> (8 * i)) & 0xff);
  bytes += h;
  bytes += std::string(offset - std::min(offset, drop_tail_bytes), '\0');
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  REQUIRE(out.good());
}

std::string load_error(const std::string& dir) {
  WhisperOptions o = base_options();
  o.path = dir;
  try {
    WhisperAsr::load(o);
  } catch (const AsrError& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("not an AsrError: " << e.what());
  }
  FAIL("loaded " << dir);
  return {};
}

}  // namespace

TEST_CASE("whisper load errors name the file", "[whisper][model][errors]") {
  TempDir tmp;
  SECTION("a missing directory") {
    const std::string dir = (tmp.path() / "nowhere").string();
    const std::string msg = load_error(dir);
    INFO(msg);
    CHECK(msg.find(dir + "/config.json") != std::string::npos);
  }
  SECTION("a directory without model.safetensors") {
    const fs::path dir = tmp.path() / "m";
    link_model(dir, {"model.safetensors"});
    const std::string msg = load_error(dir.string());
    INFO(msg);
    CHECK(msg.find((dir / "model.safetensors").string()) != std::string::npos);
  }
  SECTION("a corrupt config.json") {
    const fs::path dir = tmp.path() / "m";
    link_model(dir, {"config.json"});
    tmp.write("m/config.json", "{\"d_model\": 384, \"encoder_layers\": ");
    const std::string msg = load_error(dir.string());
    INFO(msg);
    CHECK(msg.find((dir / "config.json").string()) != std::string::npos);
  }
  SECTION("a config.json with a bad value") {
    const fs::path dir = tmp.path() / "m";
    link_model(dir, {"config.json"});
    tmp.write("m/config.json", "{\"model_type\": \"whisper\", \"d_model\": \"wide\"}");
    const std::string msg = load_error(dir.string());
    INFO(msg);
    CHECK(msg.find((dir / "config.json").string()) != std::string::npos);
    CHECK(msg.find("d_model") != std::string::npos);
  }
  SECTION("a corrupt generation_config.json") {
    const fs::path dir = tmp.path() / "m";
    link_model(dir, {"generation_config.json"});
    tmp.write("m/generation_config.json", "[1, 2");
    const std::string msg = load_error(dir.string());
    INFO(msg);
    CHECK(msg.find((dir / "generation_config.json").string()) != std::string::npos);
  }
  SECTION("a tensor of the wrong shape") {
    const fs::path dir = tmp.path() / "m";
    link_model(dir, {"model.safetensors"});
    write_safetensors(dir / "model.safetensors", {{"model.encoder.conv1.weight", {384, 80, 2}}});
    const std::string msg = load_error(dir.string());
    INFO(msg);
    CHECK(msg.find((dir / "model.safetensors").string()) != std::string::npos);
    CHECK(msg.find("model.encoder.conv1.weight") != std::string::npos);
    CHECK(msg.find("[384, 80, 2]") != std::string::npos);
  }
  SECTION("a missing tensor") {
    const fs::path dir = tmp.path() / "m";
    link_model(dir, {"model.safetensors"});
    write_safetensors(dir / "model.safetensors", {{"model.encoder.conv1.weight", {384, 80, 3}}});
    const std::string msg = load_error(dir.string());
    INFO(msg);
    CHECK(msg.find((dir / "model.safetensors").string()) != std::string::npos);
    CHECK(msg.find("model.encoder.conv1.bias") != std::string::npos);
  }
  SECTION("a truncated model.safetensors") {
    const fs::path dir = tmp.path() / "m";
    link_model(dir, {"model.safetensors"});
    write_safetensors(dir / "model.safetensors", {{"model.encoder.conv1.weight", {384, 80, 3}}}, 100);
    const std::string msg = load_error(dir.string());
    INFO(msg);
    CHECK(msg.find((dir / "model.safetensors").string()) != std::string::npos);
  }
  SECTION("a corrupt tokenizer.json") {
    const fs::path dir = tmp.path() / "m";
    link_model(dir, {"tokenizer.json"});
    tmp.write("m/tokenizer.json", "{\"model\": {");
    const std::string msg = load_error(dir.string());
    INFO(msg);
    CHECK(msg.find((dir / "tokenizer.json").string()) != std::string::npos);
  }
  SECTION("bad options") {
    WhisperOptions o = base_options();
    o.beam_size = 0;
    CHECK_THROWS_AS(WhisperAsr::load(o), AsrError);
    o = base_options();
    o.temperatures = {};
    CHECK_THROWS_AS(WhisperAsr::load(o), AsrError);
    o = base_options();
    o.device = "tpu";
    CHECK_THROWS_WITH(WhisperAsr::load(o), Catch::Contains("whisper.device"));
  }
}
