#pragma once
// TieredClipStore: the local disk tier (ClipCache) in front of the shared Redis tier.
// Built only when hiredis is found (TALKSERVE_HAVE_REDIS).
//
// get(): the disk first; on a disk miss, Redis; a clip found there is written to the disk tier
// and returned from it, so the HTTP route keeps serving files (Range, ETag) and the next hit
// stays local. put(): the disk, then Redis (skipped above the Redis size cap). Redis failing
// never fails a call: the store then behaves as the disk tier alone (RedisClipTier counts and
// logs the failures and reconnects with back-off).
//
// Thread-safety: as its tiers, every public method may be called concurrently.

#include <memory>

#include "talkserve/cache/clip_cache.hpp"
#include "talkserve/cache/clip_store.hpp"
#include "talkserve/cache/redis_clip_tier.hpp"

namespace talkserve::cache {

class TieredClipStore final : public ClipStore {
 public:
  // Both tiers must be non-null; the store owns them.
  TieredClipStore(std::unique_ptr<ClipCache> disk, std::unique_ptr<RedisClipTier> redis);

  // The disk tier's status; the clip also goes to Redis when the disk stored it or had it.
  PutStatus put(std::string_view id, std::string_view bytes) override;
  // A disk hit, else a Redis hit copied to disk; nullopt when neither has it (or the copy
  // could not be written to disk).
  std::optional<ClipInfo> get(std::string_view id) override;
  // From the disk tier (get() always returns a disk-backed clip).
  std::optional<std::string> read(const ClipInfo& clip, std::uint64_t offset,
                                  std::uint64_t length) override;
  // From both tiers; true if either had it.
  bool erase(std::string_view id) override;

  ClipCache& disk() { return *disk_; }
  RedisClipTier& redis() { return *redis_; }

 private:
  std::unique_ptr<ClipCache> disk_;
  std::unique_ptr<RedisClipTier> redis_;
};

}  // namespace talkserve::cache
