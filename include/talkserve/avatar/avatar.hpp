#pragma once
// An avatar: a portrait and where its face, mouth and eyes are. Detected once with OpenCV's
// Haar cascades (opencv-data) and overridable in the avatar's own avatar.toml; per-avatar
// precomputed render data (the rig) is cached on disk under a cache directory.
//
// Thread-safety: an Avatar is immutable after load and shared by every session that uses it.
// load_avatar() is reentrant (concurrent loads of the same avatar into one cache directory are
// safe: cache files are written to a temporary name and renamed).

#include <memory>
#include <string>

#include "talkserve/media/video.hpp"

namespace talkserve::avatar {

// Pixel rectangle in portrait coordinates (after scaling to max_size).
struct Box {
  int x = 0, y = 0, width = 0, height = 0;
  bool empty() const noexcept { return width <= 0 || height <= 0; }
  friend bool operator==(const Box&, const Box&) = default;
};

// Precomputed, renderer-specific data derived from the portrait and boxes (lip line, feathered
// masks, colours). Opaque here; defined in src/avatar.
struct AvatarRig;

struct Avatar {
  std::string id;           // directory or file stem, e.g. "grace_hopper"
  std::string fingerprint;  // sha256 (hex) of the image bytes + portrait size + regions: part
                            // of clip cache keys
  media::RgbFrame portrait; // even width and height
  Box face;
  Box mouth;                // the lips and jaw; the renderer changes a feathered ellipse around it
  Box left_eye, right_eye;  // for blinks; left/right as seen in the image (left_eye.x < right_eye.x)
  // Filled by load_avatar(). An Avatar assembled by hand (rig == nullptr) still renders: the
  // renderer then derives the rig on every call, which is slower.
  std::shared_ptr<const AvatarRig> rig;
};

struct AvatarLoadOptions {
  std::string cascade_dir;   // Haar cascade XML files; "" = where the build found opencv-data
  std::string cache_dir;    // "" = no on-disk cache of precomputed data
  int max_size = 512;       // the portrait is scaled down so its longer side is at most this
  void validate() const;    // throws std::invalid_argument naming the field
};

// What load_avatar() did, for logs and tests.
struct AvatarLoadInfo {
  bool detection_cached = false;  // the boxes came from the cache (no cascade was run)
  bool rig_cached = false;        // the rig came from <cache_dir>/<fingerprint>.rig
  bool face_detected = false;     // the face box came from the cascade (not avatar.toml/cache)
  bool eyes_detected = false;     // both eye boxes came from the eye cascade
};

// `path` is an image file (PNG/JPEG) or a directory with avatar.toml:
//
//   image = "portrait.jpg"          # relative to the directory; required
//   id = "grace"                    # optional, default: the directory name
//   [mouth]                         # optional [face] [mouth] [left_eye] [right_eye] boxes,
//   x = 200                         # in pixels of the image file as stored (they are scaled
//   y = 330                         # with the image); each given box replaces detection
//   width = 110
//   height = 50
//
// Throws std::runtime_error naming the file when it is missing, unreadable, not an image, has
// a malformed avatar.toml (naming the key) or has no detectable face.
std::shared_ptr<const Avatar> load_avatar(const std::string& path, const AvatarLoadOptions& options,
                                          AvatarLoadInfo* info = nullptr);

}  // namespace talkserve::avatar
