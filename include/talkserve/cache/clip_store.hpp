#pragma once
// The storage seam for rendered clips. ClipCache is the local directory; TieredClipStore
// (built with hiredis, TALKSERVE_HAVE_REDIS) layers the shared Redis tier behind it. The HTTP
// route and the renderer only see this interface.
//
// Ids are content addresses from ClipKeyBuilder: 64 lowercase hex characters (is_clip_id).
// A store never interprets the bytes.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace talkserve::cache {

// What get() found: enough to answer a conditional or range request without reading.
struct ClipInfo {
  std::string id;
  std::uint64_t size = 0;
  // The file holding exactly the clip's bytes, for tiers that have one (empty otherwise).
  // It may be evicted at any time: read through ClipStore::read, or open it and expect ENOENT.
  std::filesystem::path path;
  std::string etag;  // the quoted id: "\"<id>\""
};

enum class PutStatus {
  stored,      // written and indexed
  exists,      // already present (or being stored by another thread): nothing written
  too_large,   // larger than the store's byte cap: refused
  invalid_id,  // not 64 lowercase hex characters
  io_error,    // writing failed (disk full, permissions); logged, nothing indexed
};

std::string_view to_string(PutStatus s);

class ClipStore {
 public:
  virtual ~ClipStore() = default;

  // Stores `bytes` under `id`. Content-addressed, so an id present already is left as it is.
  virtual PutStatus put(std::string_view id, std::string_view bytes) = 0;

  // Looks a clip up (counts a hit or a miss and refreshes its recency). Returns nullopt for an
  // unknown id, and for a clip found damaged (which is then dropped).
  virtual std::optional<ClipInfo> get(std::string_view id) = 0;

  // Bytes [offset, offset + length) of a clip get() returned (clamped to its size). nullopt if
  // the clip went away since (evicted or erased) or reading failed.
  virtual std::optional<std::string> read(const ClipInfo& clip, std::uint64_t offset,
                                          std::uint64_t length) = 0;

  // Removes a clip. True if it was present.
  virtual bool erase(std::string_view id) = 0;
};

}  // namespace talkserve::cache
