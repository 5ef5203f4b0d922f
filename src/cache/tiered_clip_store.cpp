#include "talkserve/cache/tiered_clip_store.hpp"

#include <spdlog/spdlog.h>

#include <stdexcept>
#include <utility>

#include "talkserve/cache/clip_key.hpp"

namespace talkserve::cache {

TieredClipStore::TieredClipStore(std::unique_ptr<ClipCache> disk,
                                 std::unique_ptr<RedisClipTier> redis)
    : disk_(std::move(disk)), redis_(std::move(redis)) {
  if (!disk_ || !redis_) throw std::invalid_argument("TieredClipStore: both tiers are needed");
}

PutStatus TieredClipStore::put(std::string_view id, std::string_view bytes) {
  const PutStatus local = disk_->put(id, bytes);
  // `exists` too: the local copy may have come from a replica whose Redis entry has expired
  // since, and SET refreshes the TTL of a popular clip. Not `too_large`/`io_error`: a clip
  // this replica cannot serve from disk is not worth sharing either.
  if (local == PutStatus::stored || local == PutStatus::exists) redis_->put(id, bytes);
  return local;
}

std::optional<ClipInfo> TieredClipStore::get(std::string_view id) {
  if (auto hit = disk_->get(id)) return hit;
  if (!is_clip_id(id)) return std::nullopt;
  auto bytes = redis_->get(id);
  if (!bytes) return std::nullopt;
  const PutStatus st = disk_->put(id, *bytes);
  if (st != PutStatus::stored && st != PutStatus::exists) {
    spdlog::warn("clip store: clip {} from Redis not kept on disk ({}); rendering it locally",
                 id, to_string(st));
    return std::nullopt;
  }
  // Counts a second disk lookup (a hit); the miss before it was real.
  return disk_->get(id);
}

std::optional<std::string> TieredClipStore::read(const ClipInfo& clip, std::uint64_t offset,
                                                 std::uint64_t length) {
  return disk_->read(clip, offset, length);
}

bool TieredClipStore::erase(std::string_view id) {
  const bool local = disk_->erase(id);
  const bool shared = redis_->erase(id);
  return local || shared;
}

}  // namespace talkserve::cache
