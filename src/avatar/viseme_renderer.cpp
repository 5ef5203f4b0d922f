// The CPU viseme renderer: per frame, a mouth pose (phoneme timeline or audio energy, smoothed)
// and an eyelid closure (blink schedule), drawn into a copy of the portrait by the compositor.
// Per-avatar work (lip line, masks, colours) is precomputed in the AvatarRig at load time.

#include "talkserve/avatar/viseme_renderer.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "avatar/avatar_rig.hpp"
#include "avatar/blink_schedule.hpp"
#include "avatar/face_compositor.hpp"
#include "avatar/mouth_pose.hpp"

namespace talkserve::avatar {
namespace {

MouthPose pose_from_state(const RenderState& s) {
  return MouthPose{s.mouth_open, s.mouth_width, s.lip_press, s.teeth};
}

void store_pose(RenderState& s, const MouthPose& p) {
  s.mouth_open = p.open;
  s.mouth_width = p.width;
  s.lip_press = p.press;
  s.teeth = p.teeth;
}

void check_avatar(const Avatar& avatar) {
  const media::RgbFrame& p = avatar.portrait;
  if (p.width <= 0 || p.height <= 0 ||
      p.data.size() != static_cast<std::size_t>(p.width) * p.height * 3)
    throw std::invalid_argument("viseme renderer: avatar '" + avatar.id + "' has no valid portrait");
}

// The avatar's rig, or one derived on the spot for a hand-made Avatar.
std::shared_ptr<const AvatarRig> rig_of(const Avatar& avatar) {
  if (avatar.rig) return avatar.rig;
  return std::make_shared<const AvatarRig>(build_rig(avatar));
}

media::RgbFrame compose(const Avatar& avatar, const AvatarRig& rig, const MouthPose& pose,
                        float closure) {
  media::RgbFrame frame = avatar.portrait;
  draw_mouth(rig.mouth, avatar.portrait, pose, frame.data.data());
  for (const EyeRig& eye : rig.eyes) draw_eyelid(eye, avatar.portrait, closure, frame.data.data());
  return frame;
}

class VisemeRenderer final : public LipSyncRenderer {
 public:
  std::string name() const override { return "viseme"; }
  std::string version() const override { return "viseme-2"; }  // bump when the output changes (cache keys)

  std::vector<media::RgbFrame> render(const Avatar& avatar, const RenderInput& input,
                                      RenderState& state) const override {
    check_avatar(avatar);
    if (input.fps <= 0) throw std::invalid_argument("viseme renderer: fps must be positive");
    if (input.sample_rate <= 0)
      throw std::invalid_argument("viseme renderer: sample_rate must be positive");
    const auto rig = rig_of(avatar);

    // Frame accounting (see RenderState): carry the sub-frame remainder so that the total
    // frame count tracks the total audio duration however the stream is chunked.
    const double exact = state.frame_debt +
                         static_cast<double>(input.audio.size()) * input.fps / input.sample_rate;
    const int frames = static_cast<int>(std::max<long long>(0, std::llround(exact)));
    // Frame n shows time (n - debt) / fps into this call's audio.
    const double first_frame = -state.frame_debt;
    const double dt = 1.0 / input.fps;

    std::vector<speech::PhonemeEvent> events = input.phonemes;
    std::stable_sort(events.begin(), events.end(),
                     [](const auto& a, const auto& b) { return a.start < b.start; });
    // The audio level drives the mouth when there is no timeline, and scales the opening of
    // the timeline's shapes when there is one: stressed, loud syllables open wider than
    // unstressed ones, and a pause in the audio closes the mouth even if the timeline runs on.
    std::vector<float> levels;
    {
      const std::vector<float> rms =
          frame_rms(input.audio, input.sample_rate, input.fps, frames, first_frame);
      // Normalise against the loudest frame so far (decaying over ~8 s), so quiet and loud
      // voices both move the mouth fully; the noise gate keeps silence closed.
      const double seconds = static_cast<double>(input.audio.size()) / input.sample_rate;
      float peak = static_cast<float>(state.audio_peak * std::exp(-seconds / 8.0));
      for (float v : rms) peak = std::max(peak, v);
      state.audio_peak = peak;
      levels.reserve(rms.size());
      for (float v : rms) levels.push_back(audio_level(v, peak));
    }

    std::vector<media::RgbFrame> out;
    out.reserve(static_cast<std::size_t>(frames));
    MouthPose pose = pose_from_state(state);
    for (int n = 0; n < frames; ++n) {
      const double t = (n + first_frame) * dt;
      MouthPose target;
      if (!events.empty()) {
        const float level = levels[static_cast<std::size_t>(n)];
        target = level > 0.0f ? timeline_pose(events, t) : MouthPose{};
        target.open *= 0.3f + 0.7f * level;
        target.teeth *= 0.3f + 0.7f * level;
        state.last_viseme = static_cast<int>(level > 0.0f ? viseme_at(events, t) : speech::Viseme::rest);
      } else {
        const float level = levels[static_cast<std::size_t>(n)];
        target = audio_pose(level);
        state.last_viseme = static_cast<int>(level > 0.5f   ? speech::Viseme::aa
                                             : level > 0.0f ? speech::Viseme::dd
                                                            : speech::Viseme::rest);
      }
      pose = smooth_pose(pose, target, dt);
      out.push_back(compose(avatar, *rig, pose, blink_closure(state.time + n * dt)));
    }
    store_pose(state, pose);
    state.frame_debt = exact - frames;
    state.time += frames * dt;
    return out;
  }

  std::vector<media::RgbFrame> idle(const Avatar& avatar, int frames, int fps,
                                    RenderState& state) const override {
    check_avatar(avatar);
    if (fps <= 0) throw std::invalid_argument("viseme renderer: fps must be positive");
    const auto rig = rig_of(avatar);
    const double dt = 1.0 / fps;
    std::vector<media::RgbFrame> out;
    out.reserve(static_cast<std::size_t>(std::max(0, frames)));
    MouthPose pose = pose_from_state(state);
    for (int n = 0; n < frames; ++n) {
      pose = smooth_pose(pose, MouthPose{}, dt);  // relax towards rest
      out.push_back(compose(avatar, *rig, pose, blink_closure(state.time + n * dt)));
    }
    store_pose(state, pose);
    state.last_viseme = static_cast<int>(speech::Viseme::rest);
    state.time += std::max(0, frames) * dt;
    return out;
  }
};

}  // namespace

std::unique_ptr<LipSyncRenderer> make_viseme_renderer() { return std::make_unique<VisemeRenderer>(); }

std::vector<Box> viseme_editable_regions(const Avatar& avatar) {
  const auto rig = rig_of(avatar);
  return {rig->mouth.region, rig->eyes[0].region, rig->eyes[1].region};
}

}  // namespace talkserve::avatar
