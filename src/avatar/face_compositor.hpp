#pragma once
// Draws a mouth pose and eyelid closure into a copy of the portrait. Only pixels whose rig mask
// is non-zero are written, so everything outside the feathered mouth and eye ellipses stays
// byte-identical to the portrait; a rest pose or an open eye writes nothing at all.
//
// Thread-safety: pure functions of their arguments.

#include <cstdint>

#include "avatar/avatar_rig.hpp"
#include "avatar/mouth_pose.hpp"
#include "talkserve/media/video.hpp"

namespace talkserve::avatar {

// `out` has the portrait's size and already holds the portrait's pixels.
void draw_mouth(const MouthRig& rig, const media::RgbFrame& portrait, const MouthPose& pose,
                std::uint8_t* out);

// Blends an eyelid over the eye, closure 0 (open, no-op) .. 1 (closed).
void draw_eyelid(const EyeRig& rig, const media::RgbFrame& portrait, float closure,
                 std::uint8_t* out);

}  // namespace talkserve::avatar
