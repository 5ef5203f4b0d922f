#include "avatar/blink_schedule.hpp"

#include <cmath>
#include <cstdint>

namespace talkserve::avatar {
namespace {

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

double smoothstep(double t) { return t <= 0 ? 0 : t >= 1 ? 1 : t * t * (3 - 2 * t); }

}  // namespace

float blink_closure(double t) {
  if (!(t >= 0)) return 0.0f;
  const double slot = std::floor(t / kBlinkSlotSeconds);
  const double jitter =
      static_cast<double>(splitmix64(static_cast<std::uint64_t>(slot)) >> 11) * 0x1.0p-53;
  const double phase = t - (slot * kBlinkSlotSeconds + 1.5 + jitter);
  if (phase < 0) return 0.0f;
  if (phase < kBlinkCloseSeconds) return static_cast<float>(smoothstep(phase / kBlinkCloseSeconds));
  const double opening = phase - kBlinkCloseSeconds - kBlinkHoldSeconds;
  if (opening < 0) return 1.0f;
  return static_cast<float>(1.0 - smoothstep(opening / kBlinkOpenSeconds));
}

}  // namespace talkserve::avatar
