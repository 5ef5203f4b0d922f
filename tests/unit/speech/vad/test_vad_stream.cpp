// VadStream / detect_speech rules with a scripted model: exact event positions.

#include <catch2/catch.hpp>

#include <random>
#include <stdexcept>

#include "talkserve/speech/vad.hpp"

using talkserve::speech::detect_speech;
using talkserve::speech::SpeechRegion;
using talkserve::speech::VadModel;
using talkserve::speech::VadParams;
using talkserve::speech::VadState;
using talkserve::speech::VadStream;
using Kind = VadStream::Event::Kind;

namespace {

constexpr std::size_t kChunk = 160;  // 10 ms

// Returns probs[i] for the i-th chunk of a stream (0 after the script ends).
class ScriptedVad final : public VadModel {
 public:
  explicit ScriptedVad(std::vector<float> probs) : probs_(std::move(probs)) {}
  struct State final : VadState {
    std::size_t next = 0;
    void reset() override { next = 0; }
  };
  std::size_t chunk_samples() const override { return kChunk; }
  std::unique_ptr<VadState> new_state() const override { return std::make_unique<State>(); }
  std::vector<float> probabilities(VadState& state, std::span<const float> samples) const override {
    REQUIRE(samples.size() % kChunk == 0);
    auto& st = dynamic_cast<State&>(state);
    std::vector<float> out;
    for (std::size_t i = 0; i < samples.size() / kChunk; ++i, ++st.next) {
      out.push_back(st.next < probs_.size() ? probs_[st.next] : 0.0f);
    }
    return out;
  }

 private:
  std::vector<float> probs_;
};

std::vector<float> script(std::initializer_list<std::pair<int, float>> runs) {
  std::vector<float> p;
  for (auto [n, v] : runs) p.insert(p.end(), static_cast<std::size_t>(n), v);
  return p;
}

VadParams test_params() {
  VadParams p;
  p.threshold = 0.5f;
  p.neg_threshold = 0.35f;
  p.min_speech_ms = 50;    // 5 chunks, 800 samples
  p.min_silence_ms = 100;  // 10 chunks, 1600 samples
  p.speech_pad_ms = 20;    // 320 samples
  return p;
}

struct Reported {
  Kind kind;
  std::size_t sample;
  std::size_t position;  // stream position when reported
  bool operator==(const Reported&) const = default;
};

// Feeds the stream one chunk at a time, recording where each event was reported.
std::vector<Reported> run_by_chunk(const VadModel& model, const VadParams& params, std::size_t chunks) {
  VadStream s(model, params);
  std::vector<float> zeros(kChunk, 0.0f);
  std::vector<Reported> out;
  for (std::size_t i = 0; i < chunks; ++i) {
    for (const auto& e : s.push(zeros)) out.push_back({e.kind, e.sample, s.position()});
  }
  for (const auto& e : s.flush()) out.push_back({e.kind, e.sample, s.position()});
  return out;
}

}  // namespace

TEST_CASE("VadParams::validate names the bad field", "[speech][vad]") {
  VadParams ok;
  REQUIRE_NOTHROW(ok.validate());
  auto fails_with = [](VadParams p, const std::string& field) {
    try {
      p.validate();
      FAIL("no exception for " << field);
    } catch (const std::invalid_argument& e) {
      CHECK_THAT(e.what(), Catch::Contains(field));
    }
  };
  VadParams p = ok;
  p.threshold = 1.5f;
  fails_with(p, "threshold");
  p = ok;
  p.threshold = 0.0f;
  fails_with(p, "threshold");
  p = ok;
  p.neg_threshold = 0.6f;
  fails_with(p, "neg_threshold");
  p = ok;
  p.min_speech_ms = -1;
  fails_with(p, "min_speech_ms");
  p = ok;
  p.min_silence_ms = -5;
  fails_with(p, "min_silence_ms");
  p = ok;
  p.speech_pad_ms = -1;
  fails_with(p, "speech_pad_ms");
  p = ok;
  p.threshold = std::numeric_limits<float>::quiet_NaN();
  fails_with(p, "threshold");
}

TEST_CASE("VadStream reports start after min speech and end after min silence", "[speech][vad]") {
  ScriptedVad model(script({{10, 0.0f}, {20, 0.9f}, {15, 0.0f}}));
  const auto events = run_by_chunk(model, test_params(), 45);
  // Speech from chunk 10 (sample 1600): confirmed at the end of chunk 14 (5 chunks), start
  // padded by 320. Silence from chunk 30 (4800): 10 chunks later, at 6400, the region ends at
  // 4800 + 320.
  const std::vector<Reported> expected = {{Kind::speech_start, 1280, 2400}, {Kind::speech_end, 5120, 6400}};
  CHECK(events == expected);
  const auto regions = detect_speech(model, std::vector<float>(45 * kChunk, 0.0f), test_params());
  REQUIRE(regions.size() == 1);
  CHECK(regions[0].begin == 1280);
  CHECK(regions[0].end == 5120);
}

TEST_CASE("VadStream hysteresis: probabilities between the thresholds do not start silence", "[speech][vad]") {
  ScriptedVad model(script({{5, 0.0f}, {10, 0.9f}, {20, 0.4f}, {3, 0.9f}, {20, 0.4f}, {2, 0.1f}, {20, 0.0f}}));
  const auto events = run_by_chunk(model, test_params(), 80);
  // Speech 800..; silence only at the 0.1 chunks: chunk 58 (9280); ends 10 chunks later.
  const std::vector<Reported> expected = {{Kind::speech_start, 480, 1600}, {Kind::speech_end, 9600, 10880}};
  CHECK(events == expected);
}

TEST_CASE("VadStream: a 0.4 chunk neither starts speech nor cancels silence", "[speech][vad]") {
  ScriptedVad model(script({{3, 0.4f}, {10, 0.9f}, {1, 0.0f}, {5, 0.45f}, {4, 0.0f}, {20, 0.0f}}));
  const auto events = run_by_chunk(model, test_params(), 43);
  // Speech at chunk 3 (480); silence from chunk 13 (2080) despite the 0.45 chunks after it;
  // ends at the end of chunk 22 (3680 = 2080 + 1600).
  const std::vector<Reported> expected = {{Kind::speech_start, 160, 1280}, {Kind::speech_end, 2400, 3680}};
  CHECK(events == expected);
}

TEST_CASE("VadStream drops bursts shorter than min speech", "[speech][vad]") {
  ScriptedVad model(script({{10, 0.0f}, {4, 0.9f}, {30, 0.0f}, {2, 0.8f}}));
  CHECK(run_by_chunk(model, test_params(), 50).empty());
  CHECK(detect_speech(model, std::vector<float>(50 * kChunk, 0.0f), test_params()).empty());
}

TEST_CASE("VadStream keeps a region through a pause shorter than min silence", "[speech][vad]") {
  ScriptedVad model(script({{10, 0.0f}, {10, 0.9f}, {9, 0.0f}, {10, 0.9f}, {15, 0.0f}}));
  const auto events = run_by_chunk(model, test_params(), 54);
  const std::vector<Reported> expected = {{Kind::speech_start, 1280, 2400}, {Kind::speech_end, 6560, 7840}};
  CHECK(events == expected);
}

TEST_CASE("VadStream: padding clamps starts to the previous end and detect_speech merges", "[speech][vad]") {
  VadParams params = test_params();
  params.speech_pad_ms = 100;  // 1600: more than half the 100 ms silence
  ScriptedVad model(script({{20, 0.0f}, {10, 0.9f}, {12, 0.0f}, {10, 0.9f}, {30, 0.0f}}));
  const auto events = run_by_chunk(model, params, 82);
  // Region 1: 3200..4800 -> start 1600, end min(4800 + 1600, 6400) = 6400 at 6400.
  // Region 2: 6720.. -> start max(6720 - 1600, 6400) = 6400; end 8320 + 1600 = 9920 at 9920.
  const std::vector<Reported> expected = {{Kind::speech_start, 1600, 4000},
                                          {Kind::speech_end, 6400, 6400},
                                          {Kind::speech_start, 6400, 7520},
                                          {Kind::speech_end, 9920, 9920}};
  CHECK(events == expected);
  const auto regions = detect_speech(model, std::vector<float>(82 * kChunk, 0.0f), params);
  REQUIRE(regions.size() == 1);
  CHECK(regions[0].begin == 1600);
  CHECK(regions[0].end == 9920);
}

TEST_CASE("VadStream::flush closes an open region at the end of the audio", "[speech][vad]") {
  ScriptedVad model(script({{10, 0.0f}, {21, 0.9f}}));
  VadStream s(model, test_params());
  std::vector<float> audio(30 * kChunk + 50, 0.0f);
  const auto events = s.push(audio);
  REQUIRE(events.size() == 1);
  CHECK(events[0].kind == Kind::speech_start);
  CHECK(events[0].sample == 1280);
  CHECK(s.in_speech());
  CHECK(s.position() == 30 * kChunk);
  const auto tail = s.flush();
  REQUIRE(tail.size() == 1);
  CHECK(tail[0].kind == Kind::speech_end);
  CHECK(tail[0].sample == 30 * kChunk + 50);  // the tentative end is past the real audio
  CHECK_FALSE(s.in_speech());

  const auto regions = detect_speech(model, audio, test_params());
  REQUIRE(regions.size() == 1);
  CHECK(regions[0].begin == 1280);
  CHECK(regions[0].end == 30 * kChunk + 50);
}

TEST_CASE("VadStream::flush ends a region at its tentative end plus padding", "[speech][vad]") {
  ScriptedVad model(script({{10, 0.0f}, {10, 0.9f}, {5, 0.0f}}));
  VadStream s(model, test_params());
  auto events = s.push(std::vector<float>(25 * kChunk, 0.0f));
  REQUIRE(events.size() == 1);
  events = s.flush();
  REQUIRE(events.size() == 1);
  CHECK(events[0].sample == 20 * kChunk + 320);
}

TEST_CASE("VadStream::flush starts and ends a region long enough only at the end", "[speech][vad]") {
  ScriptedVad model(script({{10, 0.0f}, {3, 0.9f}}));
  VadParams params = test_params();
  params.min_speech_ms = 30;  // 480 samples = 3 chunks: reached at the end of chunk 12
  VadStream s(model, params);
  auto events = s.push(std::vector<float>(12 * kChunk + 100, 0.0f));
  CHECK(events.empty());  // 2 chunks of speech only
  events = s.flush();     // the partial chunk is the third 0.9: 1600..2020 = 420 < 480
  CHECK(events.empty());
}

TEST_CASE("VadStream events do not depend on how the audio is split", "[speech][vad]") {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> prob(0.0f, 1.0f);
  std::vector<float> probs;
  // Runs of random length around the thresholds.
  while (probs.size() < 2000) {
    const float v = prob(rng) < 0.5f ? 0.05f : 0.95f;
    const int n = 1 + static_cast<int>(rng() % 40);
    for (int i = 0; i < n; ++i) probs.push_back(i % 7 == 3 ? 0.4f : v);
  }
  ScriptedVad model(probs);
  const std::vector<float> audio(probs.size() * kChunk + 77, 0.0f);

  VadStream whole(model, test_params());
  auto expected = whole.push(audio);
  auto tail = whole.flush();
  expected.insert(expected.end(), tail.begin(), tail.end());
  REQUIRE(expected.size() > 10);

  VadStream pieces(model, test_params());
  std::vector<VadStream::Event> got;
  std::size_t off = 0;
  while (off < audio.size()) {
    const std::size_t n = std::min<std::size_t>(audio.size() - off, 1 + rng() % 700);
    auto e = pieces.push(std::span<const float>(audio).subspan(off, n));
    got.insert(got.end(), e.begin(), e.end());
    off += n;
  }
  tail = pieces.flush();
  got.insert(got.end(), tail.begin(), tail.end());
  REQUIRE(got.size() == expected.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    CHECK(got[i].kind == expected[i].kind);
    CHECK(got[i].sample == expected[i].sample);
  }
  // Events alternate and never go backwards.
  for (std::size_t i = 0; i < got.size(); ++i) {
    CHECK(got[i].kind == (i % 2 == 0 ? Kind::speech_start : Kind::speech_end));
    if (i > 0) CHECK(got[i].sample >= got[i - 1].sample);
  }
  // detect_speech gives the same regions, merged where they touch.
  const auto regions = detect_speech(model, audio, test_params());
  REQUIRE_FALSE(regions.empty());
  for (std::size_t i = 1; i < regions.size(); ++i) CHECK(regions[i].begin > regions[i - 1].end);
  CHECK(regions.front().begin == expected.front().sample);
  CHECK(regions.back().end == expected.back().sample);
}

TEST_CASE("VadStream rejects bad params", "[speech][vad]") {
  ScriptedVad model({});
  VadParams p;
  p.neg_threshold = 0.9f;
  CHECK_THROWS_AS(VadStream(model, p), std::invalid_argument);
}
