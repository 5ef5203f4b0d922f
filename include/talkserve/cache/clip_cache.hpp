#pragma once
// ClipCache: the disk tier of the clip store. One directory, a byte cap, least-recently-used
// eviction.
//
// Layout: for each clip `<id>.clip` (exactly the clip's bytes, servable as is) and a sidecar
// `<id>.sha256` ("<sha256 of the bytes, hex> <size>\n"). put() writes both under temporary
// names (".tmp-..."), fsyncs them, then renames the sidecar and the clip into place (a crash
// leaves either nothing, a stray temp file, or an orphan sidecar; all are cleaned at start).
//
// Recency: the index keeps an in-memory LRU list; every put() and hit also stamps the clip
// file's mtime (strictly increasing nanosecond stamps), so reopening the directory rebuilds
// the same order.
//
// Integrity: the size is checked against the sidecar on every hit and at start; the SHA-256
// is checked on the first hit after start and whenever the file's mtime is not the one this
// cache stamped (someone else wrote to it). A damaged clip is deleted, counted in
// talkserve_clip_cache_corrupt_total, and reported as a miss.
//
// One process per directory: the constructor takes an exclusive flock on `<dir>/.lock`.
//
// Thread-safety: every public method may be called concurrently from any thread. A mutex
// guards the index; the slow parts (hashing, writing and fsyncing temp files, reading clip
// bytes) run outside it. Renames and unlinks of final names happen under it, so an eviction
// never deletes a clip a concurrent put() just stored.

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "talkserve/cache/clip_store.hpp"
#include "talkserve/obs/metrics.hpp"

namespace talkserve::cache {

struct ClipCacheConfig {
  std::filesystem::path dir;                            // created if missing
  std::uint64_t max_bytes = 4ull * 1024 * 1024 * 1024;  // clip bytes (sidecars not counted)
  // Throws std::invalid_argument naming the key ("cache.dir", "cache.max_bytes").
  void validate() const;
};

struct ClipCacheStats {
  std::uint64_t entries = 0;
  std::uint64_t bytes = 0;
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
  std::uint64_t evictions = 0;
  std::uint64_t corrupt = 0;
};

class ClipCache final : public ClipStore {
 public:
  // Validates the config, creates the directory, locks it, removes stray temp files and
  // orphan sidecars, rebuilds the index from what is left (dropping clips whose size does not
  // match their sidecar) and evicts down to max_bytes. Throws std::invalid_argument for a bad
  // config and std::system_error if the directory cannot be created, locked or listed.
  // `metrics` (optional) must outlive the cache; the series carry no labels, so give each
  // registry one cache.
  explicit ClipCache(ClipCacheConfig config, obs::MetricsRegistry* metrics = nullptr);
  ~ClipCache() override;
  ClipCache(const ClipCache&) = delete;
  ClipCache& operator=(const ClipCache&) = delete;

  // Thread-safe. Concurrent puts of one id write once (the others return exists).
  PutStatus put(std::string_view id, std::string_view bytes) override;
  // Thread-safe. An invalid id is a miss that touches no file.
  std::optional<ClipInfo> get(std::string_view id) override;
  // Thread-safe; reads outside the lock.
  std::optional<std::string> read(const ClipInfo& clip, std::uint64_t offset,
                                  std::uint64_t length) override;
  // Thread-safe.
  bool erase(std::string_view id) override;

  // Thread-safe. Presence in the index, without counting, refreshing or verifying.
  bool contains(std::string_view id) const;
  // Thread-safe. A consistent snapshot of the index sizes and counters.
  ClipCacheStats stats() const;
  const ClipCacheConfig& config() const { return config_; }

  // File names inside the directory, for tools and tests.
  std::filesystem::path clip_path(std::string_view id) const;
  std::filesystem::path sidecar_path(std::string_view id) const;

 private:
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  struct Entry {
    std::uint64_t size = 0;
    std::string sha256;                    // hex, from the sidecar
    std::int64_t stamp_ns = 0;             // the mtime this cache last gave the clip file
    bool verified = false;                 // content hash checked since start
    std::uint64_t generation = 0;          // tells a re-stored entry from the one a reader saw
    std::list<std::string>::iterator lru;  // position in lru_ (front = most recent)
  };
  using Index = std::unordered_map<std::string, Entry, StringHash, std::equal_to<>>;

  void rebuild();
  std::int64_t next_stamp_locked();
  void touch_locked(const std::string& id, Entry& e);
  void drop_locked(Index::iterator it, bool corrupt, std::string_view why);
  void evict_locked();
  void publish_sizes_locked();

  ClipCacheConfig config_;
  int lock_fd_ = -1;

  mutable std::mutex mutex_;
  Index index_;
  std::list<std::string> lru_;
  std::unordered_set<std::string, StringHash, std::equal_to<>> storing_;  // puts in flight
  std::uint64_t bytes_ = 0;
  std::int64_t last_stamp_ = 0;
  std::uint64_t next_generation_ = 1;
  std::atomic<std::uint64_t> temp_counter_{0};

  std::atomic<std::uint64_t> hits_{0}, misses_{0}, evictions_{0}, corrupt_{0};
  obs::Counter* m_hits_ = nullptr;
  obs::Counter* m_misses_ = nullptr;
  obs::Counter* m_evictions_ = nullptr;
  obs::Counter* m_corrupt_ = nullptr;
  obs::Gauge* m_bytes_ = nullptr;
  obs::Gauge* m_entries_ = nullptr;
};

}  // namespace talkserve::cache
