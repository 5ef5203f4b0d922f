// Silero VAD through libtorch: the golden per-chunk probabilities of jfk.wav, per-stream state,
// and speech regions of real clips.

#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <sstream>
#include <thread>

#include "support/data_paths.hpp"
#include "talkserve/speech/vad.hpp"
#include "unit/speech/torch/pcm16_wav.hpp"

using namespace talkserve::speech;
using talkserve::test::read_speech_clip;

namespace {

std::string silero_path() { return talkserve::test::models_dir() + "/silero_vad/silero_vad.jit"; }

const VadModel& silero() {
  static const std::unique_ptr<VadModel> model = load_silero_vad(silero_path(), 1);
  return *model;
}

std::vector<float> golden_probs() {
  std::ifstream in(talkserve::test::shared_dir() + "/models/silero_vad/golden_jfk_probs.txt");
  REQUIRE(in);
  std::vector<float> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    out.push_back(std::stof(line));
  }
  return out;
}

}  // namespace

TEST_CASE("Silero VAD matches the golden probabilities of jfk.wav", "[speech][vad][torch]") {
  const std::vector<float> audio = read_speech_clip("jfk.wav");
  const std::vector<float> golden = golden_probs();
  const std::size_t chunks = audio.size() / silero().chunk_samples();
  REQUIRE(chunks == golden.size());
  REQUIRE(chunks == 343);
  auto state = silero().new_state();
  const auto probs = silero().probabilities(*state, std::span<const float>(audio).first(chunks * 512));
  REQUIRE(probs.size() == golden.size());
  float worst = 0;
  for (std::size_t i = 0; i < probs.size(); ++i) worst = std::max(worst, std::abs(probs[i] - golden[i]));
  INFO("max abs difference " << worst);
  CHECK(worst <= 1e-4f);

  // Reset gives the same again; feeding the chunks in two calls continues the state.
  state->reset();
  auto first = silero().probabilities(*state, std::span<const float>(audio).first(100 * 512));
  auto rest = silero().probabilities(*state, std::span<const float>(audio).subspan(100 * 512, (chunks - 100) * 512));
  first.insert(first.end(), rest.begin(), rest.end());
  REQUIRE(first.size() == probs.size());
  for (std::size_t i = 0; i < probs.size(); ++i) CHECK(first[i] == Approx(probs[i]).margin(1e-6));
}

TEST_CASE("Silero VAD states are independent and one model serves threads", "[speech][vad][torch]") {
  const std::vector<float> jfk = read_speech_clip("jfk.wav");
  const std::vector<float> go = read_speech_clip("pocketsphinx_goforward.wav");
  const std::size_t n = std::min(jfk.size(), go.size()) / 512;
  auto solo = [&](const std::vector<float>& audio) {
    auto st = silero().new_state();
    return silero().probabilities(*st, std::span<const float>(audio).first(n * 512));
  };
  const auto jfk_solo = solo(jfk);
  const auto go_solo = solo(go);

  // Interleaved chunk by chunk on one thread.
  auto a = silero().new_state();
  auto b = silero().new_state();
  for (std::size_t i = 0; i < n; ++i) {
    const auto pa = silero().probabilities(*a, std::span<const float>(jfk).subspan(i * 512, 512));
    const auto pb = silero().probabilities(*b, std::span<const float>(go).subspan(i * 512, 512));
    CHECK(pa[0] == Approx(jfk_solo[i]).margin(1e-6));
    CHECK(pb[0] == Approx(go_solo[i]).margin(1e-6));
  }

  // Concurrently from two threads.
  std::vector<float> ta, tb;
  std::thread t1([&] { ta = solo(jfk); });
  std::thread t2([&] { tb = solo(go); });
  t1.join();
  t2.join();
  REQUIRE(ta.size() == n);
  REQUIRE(tb.size() == n);
  for (std::size_t i = 0; i < n; ++i) {
    CHECK(ta[i] == Approx(jfk_solo[i]).margin(1e-6));
    CHECK(tb[i] == Approx(go_solo[i]).margin(1e-6));
  }
}

TEST_CASE("Silero VAD rejects bad input and bad files clearly", "[speech][vad][torch]") {
  auto st = silero().new_state();
  std::vector<float> odd(500, 0.0f);
  CHECK_THROWS_AS(silero().probabilities(*st, odd), std::invalid_argument);
  CHECK_THROWS_WITH(load_silero_vad("/nonexistent/silero.jit"), Catch::Contains("/nonexistent/silero.jit"));
  const std::string junk = talkserve::test::speech_data_dir() + "/transcripts.tsv";
  CHECK_THROWS_WITH(load_silero_vad(junk), Catch::Contains("transcripts.tsv"));
}

TEST_CASE("detect_speech with Silero on real clips", "[speech][vad][torch]") {
  VadParams params;
  SECTION("jfk.wav has speech") {
    const auto audio = read_speech_clip("jfk.wav");
    const auto regions = detect_speech(silero(), audio, params);
    REQUIRE_FALSE(regions.empty());
    std::size_t speech = 0;
    for (const auto& r : regions) {
      CHECK(r.begin < r.end);
      CHECK(r.end <= audio.size());
      speech += r.end - r.begin;
    }
    // About two thirds of the chunks are above 0.5 (SOURCE.md); padded regions cover more.
    CHECK(speech > audio.size() / 2);
    CHECK(speech < audio.size());
  }
  SECTION("zeros have no speech") {
    const std::vector<float> zeros(16000 * 3, 0.0f);
    CHECK(detect_speech(silero(), zeros, params).empty());
  }
  SECTION("goforward.wav is one region covering the words") {
    const auto audio = read_speech_clip("pocketsphinx_goforward.wav");
    const auto regions = detect_speech(silero(), audio, params);
    REQUIRE(regions.size() == 1);
    // Find the loud part of the clip directly: the first and last 10 ms frames whose RMS is
    // above a tenth of the loudest frame.
    std::vector<double> rms;
    for (std::size_t i = 0; i + 160 <= audio.size(); i += 160) {
      double s = 0;
      for (std::size_t j = i; j < i + 160; ++j) s += audio[j] * audio[j];
      rms.push_back(std::sqrt(s / 160));
    }
    const double loud = *std::max_element(rms.begin(), rms.end()) / 10;
    std::size_t first = 0, last = 0;
    for (std::size_t i = 0; i < rms.size(); ++i) {
      if (rms[i] >= loud) {
        if (first == 0) first = i;
        last = i;
      }
    }
    INFO("region " << regions[0].begin << ".." << regions[0].end << ", loud " << first * 160 << ".."
                   << (last + 1) * 160 << " of " << audio.size());
    CHECK(regions[0].begin <= first * 160);
    CHECK(regions[0].end >= (last + 1) * 160);
    CHECK(regions[0].end - regions[0].begin < audio.size());
  }
}

TEST_CASE("VadStream with Silero reports start then end on goforward.wav", "[speech][vad][torch]") {
  const auto audio = read_speech_clip("pocketsphinx_goforward.wav");
  VadStream stream(silero(), VadParams{});
  std::vector<VadStream::Event> events;
  for (std::size_t off = 0; off < audio.size(); off += 333) {
    const auto e = stream.push(std::span<const float>(audio).subspan(off, std::min<std::size_t>(333, audio.size() - off)));
    events.insert(events.end(), e.begin(), e.end());
  }
  const auto tail = stream.flush();
  events.insert(events.end(), tail.begin(), tail.end());
  REQUIRE(events.size() == 2);
  CHECK(events[0].kind == VadStream::Event::Kind::speech_start);
  CHECK(events[1].kind == VadStream::Event::Kind::speech_end);
  const auto regions = detect_speech(silero(), audio, VadParams{});
  REQUIRE(regions.size() == 1);
  CHECK(events[0].sample == regions[0].begin);
  CHECK(events[1].sample == regions[0].end);
}
