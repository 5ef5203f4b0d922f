#pragma once
// Shared helpers for the avatar tests: the test portraits, synthetic audio, frame statistics.

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "support/data_paths.hpp"
#include "talkserve/avatar/avatar.hpp"

namespace talkserve::avatar_test {
using avatar::Avatar;
using avatar::AvatarLoadOptions;
using avatar::Box;
using avatar::load_avatar;
}  // namespace talkserve::avatar_test

namespace talkserve::avatar_test {

inline std::string grace_hopper_path() {
  return talkserve::test::shared_dir() + "/testdata/faces/grace_hopper_512x512.jpg";
}
inline std::string eileen_collins_path() {
  return talkserve::test::shared_dir() + "/testdata/faces/astronaut_eileen_collins_512x512.png";
}

// Loaded once per test process (detection takes ~0.1 s); avatars are immutable.
inline std::shared_ptr<const Avatar> grace_hopper() {
  static const auto avatar = load_avatar(grace_hopper_path(), AvatarLoadOptions{});
  return avatar;
}
inline std::shared_ptr<const Avatar> eileen_collins() {
  static const auto avatar = load_avatar(eileen_collins_path(), AvatarLoadOptions{});
  return avatar;
}

// Mean absolute difference of two RGB frames over `box`.
inline double mean_abs_diff(const media::RgbFrame& a, const media::RgbFrame& b, const Box& box) {
  double sum = 0;
  for (int y = box.y; y < box.y + box.height; ++y)
    for (int x = box.x; x < box.x + box.width; ++x)
      for (int c = 0; c < 3; ++c) {
        const std::size_t i = (static_cast<std::size_t>(y) * a.width + x) * 3 + c;
        sum += std::abs(static_cast<int>(a.data[i]) - static_cast<int>(b.data[i]));
      }
  return sum / (3.0 * box.width * box.height);
}

inline bool inside(const Box& b, int x, int y) {
  return x >= b.x && x < b.x + b.width && y >= b.y && y < b.y + b.height;
}

inline double pearson(const std::vector<double>& a, const std::vector<double>& b) {
  const double n = static_cast<double>(a.size());
  double ma = 0, mb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    ma += a[i];
    mb += b[i];
  }
  ma /= n;
  mb /= n;
  double sab = 0, saa = 0, sbb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  return sab / std::sqrt(saa * sbb);
}

}  // namespace talkserve::avatar_test
