#pragma once
// Shared by the Wav2Lip tests: one random-weight checkpoint per test process (the full-size
// network, F16 on disk to halve the 145 MB), loaded once.

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "support/temp_dir.hpp"
#include "talkserve/avatar/wav2lip.hpp"

namespace talkserve::wav2lip_test {

inline const talkserve::test::TempDir& temp_dir() {
  static const talkserve::test::TempDir dir;
  return dir;
}

inline const std::string& random_weights() {
  static const std::string path = [] {
    const std::string p = (temp_dir().path() / "wav2lip_random.safetensors").string();
    avatar::write_random_wav2lip(p, 20240611, "F16");
    return p;
  }();
  return path;
}

inline std::shared_ptr<const avatar::Wav2LipModel> random_model() {
  static const auto model = avatar::Wav2LipModel::load(random_weights());
  return model;
}

// A mel window with a deterministic pattern per `seed` (values in [-4, 4]).
inline std::vector<float> mel_window(int seed) {
  std::vector<float> v(80 * 16);
  for (std::size_t i = 0; i < v.size(); ++i) {
    v[i] = static_cast<float>(4.0 * std::sin(0.37 * static_cast<double>(i) * (seed + 1) + seed));
  }
  return v;
}

// A face input with a smooth pattern (values in [0, 1], lower half of the target masked).
inline std::vector<float> face_input(int seed) {
  std::vector<float> v(6 * 96 * 96);
  for (int c = 0; c < 6; ++c)
    for (int y = 0; y < 96; ++y)
      for (int x = 0; x < 96; ++x) {
        const float value = 0.5f + 0.4f * static_cast<float>(std::sin(0.05 * (x + 2 * y) + c + seed));
        v[(static_cast<std::size_t>(c) * 96 + y) * 96 + x] = (c < 3 && y >= 48) ? 0.0f : value;
      }
  return v;
}

}  // namespace talkserve::wav2lip_test
