#pragma once
// The CPU viseme renderer: 2D warping of the portrait's mouth driven by the TTS phoneme
// timeline (or by the audio envelope when there is none), plus blinks. No model weights.
//
// Output guarantees: pixels outside editable_regions(avatar) are byte-identical to the portrait;
// output depends only on the inputs and RenderState (deterministic, no clocks, no randomness).
//
// Thread-safety: the renderer is immutable; render()/idle() may run concurrently.

#include <memory>
#include <vector>

#include "talkserve/avatar/avatar.hpp"
#include "talkserve/avatar/renderer.hpp"

namespace talkserve::avatar {

std::unique_ptr<LipSyncRenderer> make_viseme_renderer();

// Bounding boxes of every pixel the viseme renderer may change for `avatar` (the feathered
// mouth ellipse and the two eyelid ellipses), clipped to the portrait.
std::vector<Box> viseme_editable_regions(const Avatar& avatar);

}  // namespace talkserve::avatar
