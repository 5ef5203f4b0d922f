#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "support/temp_dir.hpp"
#include "talkserve/avatar/wav2lip.hpp"

using namespace talkserve::avatar;

namespace {

std::vector<float> tone(double hz, double seconds, double amplitude = 0.5) {
  std::vector<float> v(static_cast<std::size_t>(seconds * kWav2LipSampleRate));
  for (std::size_t i = 0; i < v.size(); ++i) {
    v[i] = static_cast<float>(amplitude * std::sin(2 * M_PI * hz * static_cast<double>(i) / kWav2LipSampleRate));
  }
  return v;
}

// Slaney mel scale written out from its definition (linear 200/3 Hz per mel below 1 kHz,
// 27 mels per factor 6.4 above), for the band centres.
double slaney_mel(double hz) { return hz < 1000 ? hz * 3 / 200 : 15 + 27 * std::log(hz / 1000) / std::log(6.4); }
double slaney_hz(double mel) { return mel < 15 ? mel * 200 / 3 : 1000 * std::pow(6.4, (mel - 15) / 27); }
double band_centre(int band) {
  const double lo = slaney_mel(55), hi = slaney_mel(7600);
  return slaney_hz(lo + (hi - lo) * (band + 1) / 81.0);
}

bool have_python3() { return std::system("python3 -c 'import cmath' > /dev/null 2>&1") == 0; }

}  // namespace

TEST_CASE("wav2lip mel: 1 + samples / 200 frames of 80 bands", "[wav2lip][mel]") {
  for (std::size_t n : {401u, 3000u, 3199u, 3200u, 16000u}) {
    const Wav2LipMel mel = wav2lip_melspectrogram(std::vector<float>(n, 0.0f));
    CHECK(mel.frames == static_cast<int>(1 + n / 200));
    CHECK(mel.values.size() == 80u * static_cast<std::size_t>(mel.frames));
  }
  CHECK_THROWS_AS(wav2lip_melspectrogram(std::vector<float>(400, 0.0f)), std::invalid_argument);
}

TEST_CASE("wav2lip mel: silence is -4 everywhere, a full-scale tone stays inside [-4, 4]", "[wav2lip][mel]") {
  const Wav2LipMel silent = wav2lip_melspectrogram(std::vector<float>(8000, 0.0f));
  CHECK(std::all_of(silent.values.begin(), silent.values.end(), [](float v) { return v == -4.0f; }));
  const Wav2LipMel loud = wav2lip_melspectrogram(tone(1000, 0.5, 1.0));
  // Roughly 20 log10(preemphasis gain 0.38 x half the window sum 200 x band weight ~0.03) - 20
  // ~ -13 dB -> 8 x 0.87 - 4 ~ 3: well above 0, below the +4 clip (which needs +20 dB).
  CHECK(*std::max_element(loud.values.begin(), loud.values.end()) > 1.5f);
  CHECK(*std::max_element(loud.values.begin(), loud.values.end()) < 4.0f);
  CHECK(*std::min_element(loud.values.begin(), loud.values.end()) >= -4.0f);
}

TEST_CASE("wav2lip mel: a pure tone peaks in the band centred nearest its frequency", "[wav2lip][mel]") {
  for (double hz : {200.0, 440.0, 1000.0, 2500.0, 6000.0}) {
    const Wav2LipMel mel = wav2lip_melspectrogram(tone(hz, 0.5, 0.05));
    const int frame = mel.frames / 2;
    int best = 0;
    for (int b = 1; b < kWav2LipMelBands; ++b) {
      if (mel.at(b, frame) > mel.at(best, frame)) best = b;
    }
    int nearest = 0;
    for (int b = 1; b < kWav2LipMelBands; ++b) {
      if (std::abs(band_centre(b) - hz) < std::abs(band_centre(nearest) - hz)) nearest = b;
    }
    INFO(hz << " Hz: peak band " << best << ", nearest centre band " << nearest);
    CHECK(std::abs(best - nearest) <= 1);
    // Far from the tone the spectrum is at the floor of the analysis window's leakage.
    CHECK(mel.at(best, frame) - mel.at((best + 40) % 80, frame) > 2.0f);
  }
}

TEST_CASE("wav2lip mel: filterbank has slaney area normalisation", "[wav2lip][mel]") {
  const std::vector<float>& fb = wav2lip_mel_filterbank();
  REQUIRE(fb.size() == 80u * 401u);
  CHECK(std::all_of(fb.begin(), fb.end(), [](float v) { return v >= 0; }));
  // Each triangle has unit area in Hz (norm=1): sum of weights x 20 Hz bin spacing ~ 1 once a
  // band spans enough bins to sample its triangle.
  for (int b = 20; b < 80; ++b) {
    double area = 0;
    for (int k = 0; k < 401; ++k) area += fb[static_cast<std::size_t>(b) * 401 + k] * 20.0;
    INFO("band " << b);
    CHECK(area == Approx(1.0).epsilon(0.05));
  }
  // No weight above fmax 7600 Hz (bin 380) or below fmin 55 Hz (bins 0..2).
  for (int b = 0; b < 80; ++b) {
    for (int k : {0, 1, 2, 381, 400}) CHECK(fb[static_cast<std::size_t>(b) * 401 + k] == 0.0f);
  }
}

TEST_CASE("wav2lip mel: window start is int(frame * 80 / fps), clamped to the last window", "[wav2lip][mel]") {
  CHECK(wav2lip_mel_window_start(0, 25, 100) == 0);
  CHECK(wav2lip_mel_window_start(1, 25, 100) == 3);   // int(3.2)
  CHECK(wav2lip_mel_window_start(5, 25, 100) == 16);
  CHECK(wav2lip_mel_window_start(7, 25, 100) == 22);  // int(22.4)
  CHECK(wav2lip_mel_window_start(29, 25, 100) == 84);  // 92 + 16 > 100: the last window
  CHECK(wav2lip_mel_window_start(-0.4, 25, 100) == 0);
  CHECK(wav2lip_mel_window_start(3, 30, 100) == 8);
  CHECK_THROWS_AS(wav2lip_mel_window_start(0, 25, 15), std::invalid_argument);

  Wav2LipMel mel;
  mel.frames = 20;
  mel.values.resize(80 * 20);
  for (std::size_t i = 0; i < mel.values.size(); ++i) mel.values[i] = static_cast<float>(i);
  std::vector<float> window(80 * 16);
  wav2lip_mel_window(mel, 3, window);
  CHECK(window[0] == mel.at(0, 3));
  CHECK(window[15] == mel.at(0, 18));
  CHECK(window[16] == mel.at(1, 3));
  CHECK(window[79 * 16 + 15] == mel.at(79, 18));
  CHECK_THROWS_AS(wav2lip_mel_window(mel, 5, window), std::invalid_argument);
}

TEST_CASE("wav2lip mel: matches an independent pure-Python computation", "[wav2lip][mel]") {
  if (!have_python3()) {
    WARN("python3 not found: reference comparison skipped");
    return;
  }
  // Speech-like test signal: a gliding harmonic tone with noise, silence at the start and end
  // (exercises the reflect padding and the -100 dB floor).
  std::mt19937 rng(7);
  std::normal_distribution<float> noise(0.0f, 0.02f);
  std::vector<float> audio(4000, 0.0f);
  for (std::size_t i = 600; i < 3600; ++i) {
    const double t = static_cast<double>(i) / kWav2LipSampleRate;
    const double f0 = 120 + 400 * t;
    audio[i] = static_cast<float>(0.3 * std::sin(2 * M_PI * f0 * t) + 0.1 * std::sin(2 * M_PI * 3 * f0 * t)) + noise(rng);
  }
  talkserve::test::TempDir dir;
  const std::string in = (dir.path() / "audio.txt").string(), out = (dir.path() / "mel.txt").string();
  {
    std::ofstream f(in);
    char buf[32];
    for (float v : audio) {
      std::snprintf(buf, sizeof buf, "%.9g\n", v);
      f << buf;
    }
  }
  const std::string cmd = std::string("python3 '") + WAV2LIP_MEL_REFERENCE_PY + "' '" + in + "' '" + out + "'";
  REQUIRE(std::system(cmd.c_str()) == 0);
  std::ifstream f(out);
  int bands = 0, frames = 0;
  f >> bands >> frames;
  const Wav2LipMel mel = wav2lip_melspectrogram(audio);
  REQUIRE(bands == 80);
  REQUIRE(frames == mel.frames);
  double worst = 0;
  int above_floor = 0;
  for (int b = 0; b < bands; ++b) {
    for (int t = 0; t < frames; ++t) {
      double ref = 0;
      f >> ref;
      worst = std::max(worst, std::abs(ref - mel.at(b, t)));
      if (ref > -3.5) ++above_floor;
    }
  }
  REQUIRE(f);
  INFO("largest difference " << worst);
  CHECK(worst < 1e-4);
  CHECK(above_floor > bands * frames / 4);  // the comparison covered real content, not just the floor
}
