#pragma once
// The image side of Wav2Lip: the network's 6-channel face input from the avatar's face box, and
// the generated face pasted back into a frame with a feathered blend of the lower face.
//
// Thread-safety: pure functions; a FaceCrop is immutable and shared by all frames of a call.

#include <span>
#include <vector>

#include "talkserve/avatar/avatar.hpp"
#include "talkserve/avatar/wav2lip.hpp"

namespace talkserve::avatar::detail {

struct FaceCrop {
  Box box;                   // the crop in portrait pixels (face box + bottom pad, clamped)
  std::vector<float> input;  // [6, 96, 96]: masked target then reference, BGR, in [0, 1]
  std::vector<float> alpha;  // box.width * box.height weights of the generated face, 0..1
};

// inference.py's datagen(): crop, cv2.resize to 96 x 96 (bilinear), lower half of the target
// zeroed, target and reference concatenated (for a still portrait both are the portrait's face).
// Throws std::invalid_argument when the face box is empty or outside the portrait.
FaceCrop prepare_face(const Avatar& avatar, const Wav2LipOptions& options);

// out = the portrait (already in `frame`) blended with the network output `generated`
// ([3, 96, 96] BGR in [0, 1]) as inference.py pastes it: (p * 255).astype(uint8), cv2.resize to
// the crop (bilinear), then weighted by crop.alpha.
void paste_face(const FaceCrop& crop, std::span<const float> generated, media::RgbFrame& frame);

}  // namespace talkserve::avatar::detail
