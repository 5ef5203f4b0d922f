#pragma once
// Mouth poses: the shape table per viseme, the pose over time from a phoneme timeline
// (coarticulated with a short look-around window), the audio-energy fallback, and the
// attack/release smoothing that keeps motion continuous from frame to frame and across calls.
//
// Thread-safety: pure functions.

#include <span>
#include <vector>

#include "talkserve/speech/tts.hpp"

namespace talkserve::avatar {

struct MouthPose {
  float open = 0;   // lip gap, 0 closed .. 1 widest (aa)
  float width = 1;  // lip width relative to rest; < 1 rounded (ou, oh), > 1 spread (ee)
  float press = 0;  // lips pressed together and thinned (m b p)
  float teeth = 0;  // how much of the upper teeth shows in the gap
};

MouthPose viseme_pose(speech::Viseme viseme);

// True when the pose is so close to rest that rendering it would not change a pixel.
bool is_rest(const MouthPose& pose);

// The viseme sounding at time t (seconds from the start of the timeline's audio), rest in gaps.
// `events` sorted by start.
speech::Viseme viseme_at(std::span<const speech::PhonemeEvent> events, double t);

// The target pose at time t: a raised-cosine weighted average of the viseme poses within
// +-60 ms (neighbouring sounds shape each other), except that bilabials (m b p) still close.
MouthPose timeline_pose(std::span<const speech::PhonemeEvent> events, double t);

// RMS of `audio` in a window of one frame around each frame time; frame n sits at
// (n + first_frame) / fps seconds into the audio (first_frame may be fractional).
std::vector<float> frame_rms(std::span<const float> audio, int sample_rate, int fps, int frames,
                             double first_frame);

// The audio-driven pose for a normalised level 0..1.
MouthPose audio_pose(float level);

// Normalises an RMS value against the running peak with a noise gate: below the gate (silence,
// hiss) the level is exactly 0.
float audio_level(float rms, float peak);
inline constexpr float kAudioNoiseGate = 0.01f;  // RMS, about -40 dBFS
inline constexpr float kAudioMinPeak = 0.05f;

// One step of attack/release smoothing of `current` towards `target` over dt seconds: opening
// follows within ~40 ms, closing within ~60 ms.
MouthPose smooth_pose(const MouthPose& current, const MouthPose& target, double dt);

}  // namespace talkserve::avatar
