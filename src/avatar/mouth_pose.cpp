#include "avatar/mouth_pose.hpp"

#include <algorithm>
#include <array>
#include <cmath>

namespace talkserve::avatar {
namespace {

using speech::Viseme;

// open, width, press, teeth. Rough shapes from the viseme descriptions in docs/tts.md.
constexpr std::array<MouthPose, speech::kVisemeCount> kPoses = {{
    {0.00f, 1.00f, 0.0f, 0.0f},  // rest
    {0.00f, 0.97f, 1.0f, 0.0f},  // mbp: lips pressed
    {0.10f, 1.00f, 0.4f, 0.9f},  // fv: lower lip to upper teeth
    {0.20f, 1.00f, 0.0f, 0.7f},  // th
    {0.30f, 1.00f, 0.0f, 0.6f},  // dd
    {0.45f, 1.00f, 0.0f, 0.4f},  // kk
    {0.22f, 0.84f, 0.0f, 0.8f},  // ch: lips forward, teeth close
    {0.30f, 0.82f, 0.0f, 0.2f},  // rr
    {1.00f, 1.05f, 0.0f, 0.5f},  // aa: wide open
    {0.35f, 1.15f, 0.0f, 0.9f},  // ee: spread
    {0.70f, 0.78f, 0.0f, 0.2f},  // oh: rounded open
    {0.28f, 0.68f, 0.0f, 0.0f},  // ou: rounded small
}};

// Look-around window of timeline_pose(): offsets (s) and raised-cosine weights.
constexpr std::array<double, 7> kOffsets = {-0.06, -0.04, -0.02, 0.0, 0.02, 0.04, 0.06};
constexpr std::array<float, 7> kWeights = {0.146f, 0.5f, 0.854f, 1.0f, 0.854f, 0.5f, 0.146f};

float approach(float current, float target, float alpha) { return current + (target - current) * alpha; }

}  // namespace

MouthPose viseme_pose(Viseme viseme) {
  const auto i = static_cast<std::size_t>(viseme);
  return i < kPoses.size() ? kPoses[i] : kPoses[0];
}

bool is_rest(const MouthPose& p) {
  return p.open < 1e-3f && std::abs(p.width - 1) < 1e-3f && p.press < 1e-3f;
}

Viseme viseme_at(std::span<const speech::PhonemeEvent> events, double t) {
  // The last event starting at or before t; an earlier one may still be sounding when events
  // overlap, so look back a couple.
  auto it = std::upper_bound(events.begin(), events.end(), t,
                             [](double v, const speech::PhonemeEvent& e) { return v < e.start; });
  for (int back = 0; back < 3 && it != events.begin(); ++back) {
    --it;
    if (t < it->start + it->duration) return it->viseme;
  }
  return Viseme::rest;
}

MouthPose timeline_pose(std::span<const speech::PhonemeEvent> events, double t) {
  MouthPose sum{0, 0, 0, 0};
  float total = 0;
  for (std::size_t k = 0; k < kOffsets.size(); ++k) {
    const MouthPose p = viseme_pose(viseme_at(events, t + kOffsets[k]));
    const float w = kWeights[k];
    sum.open += w * p.open;
    sum.width += w * p.width;
    sum.press += w * p.press;
    sum.teeth += w * p.teeth;
    total += w;
  }
  MouthPose pose{sum.open / total, sum.width / total, sum.press / total, sum.teeth / total};
  if (viseme_at(events, t) == Viseme::mbp) {
    pose.open *= 0.25f;
    pose.press = std::max(pose.press, 0.7f);
  }
  return pose;
}

std::vector<float> frame_rms(std::span<const float> audio, int sample_rate, int fps, int frames,
                             double first_frame) {
  std::vector<float> rms(static_cast<std::size_t>(std::max(0, frames)), 0.0f);
  const double half = 0.5 / fps + 0.01;  // a frame plus a little overlap
  for (int n = 0; n < frames; ++n) {
    const double t = (n + first_frame) / fps;
    const auto lo = static_cast<std::ptrdiff_t>(std::max(0.0, std::floor((t - half) * sample_rate)));
    const auto hi = std::min(static_cast<std::ptrdiff_t>(audio.size()),
                             static_cast<std::ptrdiff_t>(std::ceil((t + half) * sample_rate)));
    if (hi <= lo) continue;
    double sum = 0;
    for (std::ptrdiff_t i = lo; i < hi; ++i) sum += static_cast<double>(audio[i]) * audio[i];
    rms[n] = static_cast<float>(std::sqrt(sum / static_cast<double>(hi - lo)));
  }
  return rms;
}

float audio_level(float rms, float peak) {
  peak = std::max(peak, kAudioMinPeak);
  if (rms <= kAudioNoiseGate) return 0.0f;
  return std::clamp((rms - kAudioNoiseGate) / (peak - kAudioNoiseGate), 0.0f, 1.0f);
}

MouthPose audio_pose(float level) {
  level = std::clamp(level, 0.0f, 1.0f);
  return MouthPose{0.85f * level, 1.0f - 0.06f * level, 0.0f, 0.6f * level};
}

MouthPose smooth_pose(const MouthPose& current, const MouthPose& target, double dt) {
  const double tau = target.open > current.open ? 0.04 : 0.06;
  const auto alpha = static_cast<float>(1.0 - std::exp(-dt / tau));
  MouthPose next{approach(current.open, target.open, alpha),
                 approach(current.width, target.width, alpha),
                 approach(current.press, target.press, alpha),
                 approach(current.teeth, target.teeth, alpha)};
  // Settling onto rest: snap the last fraction of a pixel, so a closed mouth renders the
  // portrait exactly instead of approaching it forever.
  const bool near_rest = next.open < 0.01f && std::abs(next.width - 1) < 0.01f && next.press < 0.01f;
  if (near_rest && is_rest(target)) next = MouthPose{0, 1, 0, next.teeth};
  return next;
}

}  // namespace talkserve::avatar
