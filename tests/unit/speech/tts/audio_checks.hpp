#pragma once
// Checks shared by the TTS backend tests: loudness, a crude F0 estimate, timeline validity.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

#include "talkserve/speech/tts.hpp"

namespace talkserve::speech::test {

inline double rms(const std::vector<float>& samples) {
  if (samples.empty()) return 0;
  double sum = 0;
  for (float s : samples) sum += static_cast<double>(s) * s;
  return std::sqrt(sum / static_cast<double>(samples.size()));
}

// Median autocorrelation F0 (60..400 Hz) over the loud 40 ms frames.
inline double median_f0(const std::vector<float>& samples, int rate) {
  const std::size_t frame = static_cast<std::size_t>(rate) * 40 / 1000;
  const std::size_t min_lag = static_cast<std::size_t>(rate / 400);
  const std::size_t max_lag = static_cast<std::size_t>(rate / 60);
  const double loud = rms(samples);
  std::vector<double> f0s;
  for (std::size_t start = 0; start + frame + max_lag < samples.size(); start += frame / 2) {
    double energy = 0;
    for (std::size_t i = 0; i < frame; ++i) energy += samples[start + i] * samples[start + i];
    if (std::sqrt(energy / frame) < loud) continue;
    double best = 0;
    std::size_t best_lag = 0;
    for (std::size_t lag = min_lag; lag <= max_lag; ++lag) {
      double acc = 0;
      for (std::size_t i = 0; i < frame; ++i) acc += samples[start + i] * samples[start + i + lag];
      if (acc > best) {
        best = acc;
        best_lag = lag;
      }
    }
    if (best_lag > 0 && best > 0.3 * energy) f0s.push_back(static_cast<double>(rate) / best_lag);
  }
  if (f0s.empty()) return 0;
  std::nth_element(f0s.begin(), f0s.begin() + static_cast<std::ptrdiff_t>(f0s.size() / 2),
                   f0s.end());
  return f0s[f0s.size() / 2];
}

// Ordered, gap-free, non-overlapping, positive durations, covering [0, audio end].
inline void check_timeline(const TtsResult& result, double tolerance = 0.005) {
  const double end = result.duration();
  REQUIRE_FALSE(result.phonemes.empty());
  CHECK(result.phonemes.front().start == Approx(0).margin(tolerance));
  double previous_end = 0;
  for (const auto& event : result.phonemes) {
    INFO("phoneme '" << event.phoneme << "' at " << event.start);
    CHECK(event.duration > 0);
    CHECK(event.start >= previous_end - 1e-9);
    CHECK(event.start <= previous_end + tolerance);
    previous_end = event.start + event.duration;
  }
  CHECK(previous_end == Approx(end).margin(tolerance));
}

inline std::set<Viseme> visemes_of(const TtsResult& result) {
  std::set<Viseme> out;
  for (const auto& event : result.phonemes) out.insert(event.viseme);
  return out;
}

}  // namespace talkserve::speech::test
