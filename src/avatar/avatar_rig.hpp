#pragma once
// The per-avatar data the viseme renderer precomputes from the portrait and its boxes: the lip
// line, the mouth's feathered work ellipse and displacement extent, inner-mouth/teeth colours,
// and per eye the eyelid ellipse, its feather mask and the lid colour sampled above the eye.
// Serialised to <cache_dir>/<fingerprint>.rig by the loader.
//
// Thread-safety: immutable after build; shared read-only by all renders.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "talkserve/avatar/avatar.hpp"

namespace talkserve::avatar {

using Colour = std::array<float, 3>;  // RGB, 0..255

struct MouthRig {
  Box region;                      // bounding box of the feathered ellipse, clipped
  std::vector<std::uint8_t> mask;  // region.width * region.height feather weights (0 = untouched)
  float centre_x = 0;              // lip centre
  float half_width = 0;            // half the lip width, pixels
  float lip_y = 0, lip_tilt = 0, lip_curve = 0;  // lip line y = lip_y + tilt*dx + curve*dx^2
  float top = 0, bottom = 0;       // rows where the vertical displacement fades to zero
  float max_open = 0;              // lip gap at openness 1, pixels
  Colour inner{}, teeth{};
};

struct EyeRig {
  Box region;
  std::vector<std::uint8_t> mask;  // the eye ellipse, feathered
  float centre_x = 0, centre_y = 0, radius_x = 0, radius_y = 0;
  Colour lid{}, lash{};
};

struct AvatarRig {
  MouthRig mouth;
  std::array<EyeRig, 2> eyes;  // image-left, image-right
};

// Derives the rig from the portrait and the avatar's boxes (rig member ignored).
AvatarRig build_rig(const Avatar& avatar);

// Versioned binary form for the on-disk cache; parse_rig() returns nullopt for anything it
// does not recognise (other version, truncated, corrupt), so a stale cache is just rebuilt.
std::string serialize_rig(const AvatarRig& rig);
std::optional<AvatarRig> parse_rig(std::string_view bytes);

}  // namespace talkserve::avatar
