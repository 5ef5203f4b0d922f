#include <catch2/catch.hpp>

#include <thread>

#include "audio_checks.hpp"
#include "talkserve/speech/flite_backend.hpp"

using namespace talkserve::speech;
using namespace talkserve::speech::test;

namespace {

const char* const kVoices[] = {"cmu_us_kal16", "cmu_us_slt", "cmu_us_rms", "cmu_us_awb"};

TtsRequest request(const std::string& text, const std::string& voice, double speed = 1.0,
                   std::optional<int> pitch = std::nullopt) {
  TtsRequest r;
  r.text = text;
  r.voice = voice;
  r.speed = speed;
  r.pitch = pitch;
  return r;
}

}  // namespace

TEST_CASE("flite: every voice synthesises with a valid timeline", "[tts][flite]") {
  auto flite = FliteBackend::create();
  CHECK(flite->thread_safe());
  CHECK(flite->sample_rate() == 16000);
  REQUIRE(flite->voices().size() == 4);
  for (const char* voice : kVoices) {
    INFO(voice);
    const auto result = flite->synthesize(request("Hello mama, the thin fox jumped.", voice));
    CHECK(result.sample_rate == 16000);
    CHECK(result.duration() > 1.0);
    CHECK(result.duration() < 5.0);
    CHECK(rms(result.samples) > 0.02);
    check_timeline(result);
    const auto visemes = visemes_of(result);
    for (Viseme v : {Viseme::rest, Viseme::mbp, Viseme::aa, Viseme::th, Viseme::kk,
                     Viseme::fv, Viseme::ch, Viseme::ee}) {
      INFO(to_string(v));
      CHECK(visemes.count(v) == 1);
    }
  }
}

TEST_CASE("flite: speed, pitch and errors", "[tts][flite]") {
  auto flite = FliteBackend::create();
  const std::string text = "The quick brown fox jumps over the lazy dog near the river bank.";
  const auto normal = flite->synthesize(request(text, "cmu_us_slt"));
  const auto fast = flite->synthesize(request(text, "cmu_us_slt", 2.0));
  CHECK(fast.duration() < 0.7 * normal.duration());
  check_timeline(fast);

  const auto low = flite->synthesize(request(text, "cmu_us_slt", 1.0, 10));
  const auto high = flite->synthesize(request(text, "cmu_us_slt", 1.0, 90));
  const double f0_low = median_f0(low.samples, low.sample_rate);
  const double f0_high = median_f0(high.samples, high.sample_rate);
  INFO("f0 low " << f0_low << " high " << f0_high);
  CHECK(f0_high > 1.2 * f0_low);

  CHECK_THROWS_MATCHES(flite->synthesize(request("Hi.", "cmu_us_nobody")), TtsError,
                       Catch::Matchers::Message("flite: unknown voice 'cmu_us_nobody'"));
  CHECK_THROWS_AS(FliteBackend::create(FliteConfig{"nobody"}), TtsError);
  CHECK(rms(flite->synthesize(request("Default voice.", "")).samples) > 0.02);
}

TEST_CASE("flite: four threads synthesise concurrently, identical to one thread",
          "[tts][flite][threads]") {
  auto flite = FliteBackend::create();
  const std::string text = "Concurrency should not change a single sample of this sentence.";
  std::vector<std::vector<float>> reference;
  for (const char* voice : kVoices) reference.push_back(flite->synthesize(request(text, voice)).samples);

  constexpr int kThreads = 4;
  constexpr int kRounds = 3;
  std::vector<std::vector<std::vector<float>>> outputs(kThreads);
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        for (int round = 0; round < kRounds; ++round) {
          // Every thread uses every voice, in a different order.
          for (int k = 0; k < 4; ++k) {
            const int voice = (t + k) % 4;
            outputs[t].push_back(flite->synthesize(request(text, kVoices[voice])).samples);
          }
        }
      } catch (const std::exception& e) {
        errors[t] = e.what();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    INFO("thread " << t);
    CHECK(errors[t].empty());
    REQUIRE(outputs[t].size() == kRounds * 4);
    for (int i = 0; i < kRounds * 4; ++i) {
      const int voice = (t + i % 4) % 4;
      INFO("round item " << i << " voice " << kVoices[voice]);
      const bool identical = outputs[t][i] == reference[voice];  // no 100k-sample dump
      CHECK(identical);
    }
  }
}
