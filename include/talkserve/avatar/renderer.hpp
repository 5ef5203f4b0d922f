#pragma once
// Lip-sync renderers behind one interface. A renderer turns a piece of speech (audio, and the
// TTS phoneme timeline when there is one) into video frames of an avatar at a fixed frame rate:
// exactly round(audio duration * fps) frames, frame n showing the mouth at time n / fps.
// Idle frames (no speech) keep the face alive with blinks.
//
// Thread-safety: render() and idle() may be called from several threads at once; the
// renderer is immutable after construction (per-stream state lives in RenderState).

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "talkserve/avatar/avatar.hpp"
#include "talkserve/media/video.hpp"
#include "talkserve/speech/tts.hpp"

namespace talkserve::avatar {

// Continuity between consecutive calls for one stream (mouth pose, blink clock, frame
// accounting). Start a stream with a default-constructed state; one state per stream.
//
// Frame accounting: a call for n audio samples at rate r renders round(frame_debt + n*fps/r)
// frames and keeps the difference in frame_debt (always within [-0.5, 0.5]). The first call of
// a stream therefore gives exactly round(seconds * fps), and after any number of calls the
// total is round(total audio seconds * fps) (up to double rounding): video never drifts from
// the audio. frame_debt / fps is also the offset of this call's audio start from `time`.
struct RenderState {
  double time = 0;        // seconds of video rendered so far in this stream
  float mouth_open = 0;   // last mouth pose (0 closed .. 1 wide open), for smooth transitions
  int last_viseme = 0;    // speech::Viseme of the last frame's dominant viseme
  float mouth_width = 1;  // rest of the last mouth pose: relative lip width (<1 rounded)
  float lip_press = 0;    //   0..1, lips pressed together (m b p)
  float teeth = 0;        //   0..1, how much teeth show in the opening
  double frame_debt = 0;  // audio not yet covered by video, in frames (see above)
  float audio_peak = 0;   // running peak of the per-frame audio RMS (audio-driven mode)
};

struct RenderInput {
  std::span<const float> audio;                 // mono, [-1, 1]
  int sample_rate = 24000;
  std::vector<speech::PhonemeEvent> phonemes;   // times relative to the start of `audio`;
                                                // empty = drive the mouth from audio energy
  int fps = 25;
};

class LipSyncRenderer {
 public:
  virtual ~LipSyncRenderer() = default;
  virtual std::string name() const = 0;     // "viseme", "wav2lip"
  virtual std::string version() const = 0;  // changes whenever output would change (cache keys)
  virtual std::vector<media::RgbFrame> render(const Avatar& avatar, const RenderInput& input,
                                              RenderState& state) const = 0;
  virtual std::vector<media::RgbFrame> idle(const Avatar& avatar, int frames, int fps,
                                            RenderState& state) const = 0;
};

}  // namespace talkserve::avatar
