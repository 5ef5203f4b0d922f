// The original Wav2Lip audio features (audio.py with hparams.py; librosa 0.7 as pinned by its
// requirements), in plain C++. Double precision throughout; the filterbank is rounded to
// float32 as librosa returns it.

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "talkserve/avatar/wav2lip.hpp"

namespace talkserve::avatar {
namespace {

constexpr double kPreemphasis = 0.97;
constexpr double kFmin = 55;
constexpr double kFmax = 7600;
constexpr double kMinLevelDb = -100;
constexpr double kRefLevelDb = 20;
constexpr double kMaxAbsValue = 4;
constexpr int kBins = kWav2LipFftSize / 2 + 1;  // 401

// librosa.hz_to_mel / mel_to_hz with htk=False (Slaney's Auditory Toolbox): linear below
// 1 kHz (200/3 Hz per mel), logarithmic above.
constexpr double kFsp = 200.0 / 3;
constexpr double kMinLogHz = 1000;
constexpr double kMinLogMel = kMinLogHz / kFsp;  // 15
const double kLogStep = std::log(6.4) / 27.0;

double hz_to_mel(double hz) { return hz >= kMinLogHz ? kMinLogMel + std::log(hz / kMinLogHz) / kLogStep : hz / kFsp; }
double mel_to_hz(double mel) { return mel >= kMinLogMel ? kMinLogHz * std::exp(kLogStep * (mel - kMinLogMel)) : kFsp * mel; }

// np.linspace(a, b, n) (endpoint included, the last value exactly b).
std::vector<double> linspace(double a, double b, int n) {
  std::vector<double> v(static_cast<std::size_t>(n));
  const double step = (b - a) / (n - 1);
  for (int i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = a + i * step;
  v.back() = b;
  return v;
}

std::vector<float> build_filterbank() {
  const std::vector<double> fft_freqs = linspace(0, kWav2LipSampleRate / 2.0, kBins);
  std::vector<double> mel_f = linspace(hz_to_mel(kFmin), hz_to_mel(kFmax), kWav2LipMelBands + 2);
  for (double& m : mel_f) m = mel_to_hz(m);
  std::vector<float> w(static_cast<std::size_t>(kWav2LipMelBands) * kBins, 0.0f);
  for (int i = 0; i < kWav2LipMelBands; ++i) {
    const double lo = mel_f[i], mid = mel_f[i + 1], hi = mel_f[i + 2];
    const double norm = 2.0 / (hi - lo);  // norm=1 ("slaney"): constant area per band
    for (int k = 0; k < kBins; ++k) {
      const double lower = (fft_freqs[k] - lo) / (mid - lo);
      const double upper = (hi - fft_freqs[k]) / (hi - mid);
      const double v = std::max(0.0, std::min(lower, upper));
      w[static_cast<std::size_t>(i) * kBins + k] = static_cast<float>(v * norm);
    }
  }
  return w;
}

// cos/sin of 2 pi j / n_fft, for the DFT of one frame.
struct Twiddles {
  std::vector<double> cos, sin, window;
  Twiddles() : cos(kWav2LipFftSize), sin(kWav2LipFftSize), window(kWav2LipFftSize) {
    for (int j = 0; j < kWav2LipFftSize; ++j) {
      const double a = 2 * M_PI * j / kWav2LipFftSize;
      cos[j] = std::cos(a);
      sin[j] = std::sin(a);
      window[j] = 0.5 - 0.5 * std::cos(a);  // scipy get_window("hann", 800, fftbins=True)
    }
  }
};

const Twiddles& twiddles() {
  static const Twiddles t;
  return t;
}

}  // namespace

const std::vector<float>& wav2lip_mel_filterbank() {
  static const std::vector<float> fb = build_filterbank();
  return fb;
}

Wav2LipMel wav2lip_melspectrogram(std::span<const float> audio) {
  constexpr int pad = kWav2LipFftSize / 2;
  const auto n = static_cast<std::int64_t>(audio.size());
  if (n <= pad) {
    throw std::invalid_argument("wav2lip mel: " + std::to_string(n) + " samples; at least " +
                                std::to_string(pad + 1) + " are needed");
  }
  // scipy.signal.lfilter([1, -k], [1], wav), then librosa.stft's centring: np.pad(mode="reflect").
  std::vector<double> y(static_cast<std::size_t>(n + 2 * pad));
  auto pre = [&](std::int64_t i) {
    return static_cast<double>(audio[i]) - (i > 0 ? kPreemphasis * audio[i - 1] : 0.0);
  };
  for (std::int64_t i = 0; i < n; ++i) y[pad + i] = pre(i);
  for (int i = 0; i < pad; ++i) {
    y[pad - 1 - i] = y[pad + 1 + i];            // reflect about the first sample
    y[pad + n + i] = y[pad + n - 2 - i];        // and about the last
  }

  const int frames = static_cast<int>(1 + n / kWav2LipHopSize);
  const Twiddles& tw = twiddles();
  const std::vector<float>& fb = wav2lip_mel_filterbank();
  Wav2LipMel mel;
  mel.frames = frames;
  mel.values.assign(static_cast<std::size_t>(kWav2LipMelBands) * frames, 0.0f);
  std::vector<double> x(kWav2LipFftSize), mag(kBins);
  const double min_level = std::pow(10.0, kMinLevelDb / 20);  // 1e-5
  for (int f = 0; f < frames; ++f) {
    const double* src = y.data() + static_cast<std::size_t>(f) * kWav2LipHopSize;
    for (int j = 0; j < kWav2LipFftSize; ++j) x[j] = src[j] * tw.window[j];
    for (int k = 0; k < kBins; ++k) {
      double re = 0, im = 0;
      int idx = 0;  // k * j mod n_fft, without a division per term
      for (int j = 0; j < kWav2LipFftSize; ++j) {
        re += x[j] * tw.cos[idx];
        im -= x[j] * tw.sin[idx];
        idx += k;
        if (idx >= kWav2LipFftSize) idx -= kWav2LipFftSize;
      }
      mag[k] = std::sqrt(re * re + im * im);
    }
    for (int b = 0; b < kWav2LipMelBands; ++b) {
      const float* row = fb.data() + static_cast<std::size_t>(b) * kBins;
      double m = 0;
      for (int k = 0; k < kBins; ++k) m += row[k] * mag[k];
      const double db = 20 * std::log10(std::max(min_level, m)) - kRefLevelDb;
      const double v = 2 * kMaxAbsValue * ((db - kMinLevelDb) / -kMinLevelDb) - kMaxAbsValue;
      mel.values[static_cast<std::size_t>(b) * frames + f] = static_cast<float>(std::clamp(v, -kMaxAbsValue, kMaxAbsValue));
    }
  }
  return mel;
}

int wav2lip_mel_window_start(double position, double fps, int mel_frames) {
  if (mel_frames < kWav2LipMelStep) {
    throw std::invalid_argument("wav2lip mel: " + std::to_string(mel_frames) + " mel frames; a window needs " +
                                std::to_string(kWav2LipMelStep));
  }
  const double multiplier = 80.0 / fps;  // mel_idx_multiplier = 80. / fps
  const auto start = static_cast<long long>(position * multiplier);  // int(): towards zero
  return static_cast<int>(std::clamp<long long>(start, 0, mel_frames - kWav2LipMelStep));
}

void wav2lip_mel_window(const Wav2LipMel& mel, int start, std::span<float> out) {
  if (out.size() != static_cast<std::size_t>(kWav2LipMelBands) * kWav2LipMelStep) {
    throw std::invalid_argument("wav2lip mel window: output must hold 80 x 16 values");
  }
  if (start < 0 || start + kWav2LipMelStep > mel.frames) {
    throw std::invalid_argument("wav2lip mel window: start " + std::to_string(start) + " outside " +
                                std::to_string(mel.frames) + " frames");
  }
  for (int b = 0; b < kWav2LipMelBands; ++b) {
    const float* src = mel.values.data() + static_cast<std::size_t>(b) * mel.frames + start;
    std::copy(src, src + kWav2LipMelStep, out.begin() + static_cast<std::ptrdiff_t>(b) * kWav2LipMelStep);
  }
}

}  // namespace talkserve::avatar
