#pragma once
// RedisClipTier: clips shared between talkserve replicas through one Redis server.
// Built only when hiredis is found (TALKSERVE_HAVE_REDIS, see TalkserveDependencies.cmake).
//
// A clip is one Redis string, key `<key_prefix><id>`, value exactly the clip's bytes, written
// with SET ... EX ttl. Clips larger than max_entry_bytes are not stored (a replica renders them
// itself), which keeps one big clip from evicting many small ones in a shared Redis.
//
// Redis is an optimisation, never a dependency: the shared RedisClient (redis_client.hpp)
// counts, logs and backs off after failures; the tier answers "absent" / "not stored" then, and
// counts talkserve_redis_clip_skipped_total{reason="unavailable"}, so that the caller carries
// on with its local tier.
//
// Thread-safety: every public method may be called concurrently from any thread.

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <memory>

#include "talkserve/cache/redis_client.hpp"
#include "talkserve/obs/metrics.hpp"
#include "talkserve/sched/clock.hpp"

namespace talkserve::cache {

struct RedisClipTierConfig {
  // "redis://[[user]:password@]host[:port][/db]"; port defaults to 6379 and db to 0.
  std::string url;
  std::chrono::seconds ttl{7 * 24 * 3600};       // SET ... EX ttl
  std::uint64_t max_entry_bytes = 64ull << 20;   // larger clips stay local
  std::chrono::milliseconds timeout{250};        // connect, and each socket read/write
  std::string key_prefix = "talkserve:clip:";
  std::size_t max_connections = 4;
  std::chrono::milliseconds retry_min{100};      // back-off after the first failure
  std::chrono::milliseconds retry_max{10'000};   // back-off cap (doubling from retry_min)
  std::chrono::milliseconds log_interval{10'000};  // at most one failure message per interval
  // Throws std::invalid_argument naming the key ("redis.url", "redis.clip_ttl_s", ...).
  void validate() const;
};

struct RedisClipTierStats {
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
  std::uint64_t stores = 0;
  std::uint64_t too_large = 0;    // puts skipped by the size cap
  std::uint64_t skipped = 0;      // calls skipped while backing off (the client's, shared)
  std::uint64_t errors = 0;       // failed connects and commands (the client's, shared)
  std::uint64_t connects = 0;     // connections opened (the client's, shared)
};

class RedisClipTier {
 public:
  enum class PutResult { stored, too_large, unavailable };

  // Validates the config (std::invalid_argument) and tries one connection, logging whether
  // Redis answered; an unreachable Redis is not an error here. `metrics` (optional) and `clock`
  // must outlive the tier.
  explicit RedisClipTier(RedisClipTierConfig config, obs::MetricsRegistry* metrics = nullptr,
                         sched::Clock& clock = sched::steady_clock());
  // The same on a client shared with other tiers (the session tier): the client's url, timeout
  // and pool settings apply, not the config's.
  RedisClipTier(RedisClipTierConfig config, std::shared_ptr<RedisClient> client,
                obs::MetricsRegistry* metrics = nullptr);
  ~RedisClipTier();
  RedisClipTier(const RedisClipTier&) = delete;
  RedisClipTier& operator=(const RedisClipTier&) = delete;

  // Thread-safe. The clip's bytes, or nullopt when Redis has no such key or cannot be asked.
  std::optional<std::string> get(std::string_view id);
  // Thread-safe. SET key bytes EX ttl (refreshing the TTL of a clip already there).
  PutResult put(std::string_view id, std::string_view bytes);
  // Thread-safe. DEL; true if the key existed.
  bool erase(std::string_view id);
  // Thread-safe. Seconds left before the clip expires (TTL): nullopt if absent or unavailable.
  std::optional<std::int64_t> ttl_seconds(std::string_view id);
  // Thread-safe. PING through the pool (reconnecting if the back-off allows): true on PONG.
  bool ping();

  std::string key_for(std::string_view id) const;
  // Thread-safe snapshot of the counters.
  RedisClipTierStats stats() const;
  const RedisClipTierConfig& config() const { return config_; }
  const std::shared_ptr<RedisClient>& client() const { return client_; }

 private:
  void count_unavailable(const RedisResult& r);

  RedisClipTierConfig config_;
  std::shared_ptr<RedisClient> client_;
  mutable std::mutex mutex_;  // stats_
  RedisClipTierStats stats_;

  obs::Counter* m_hits_ = nullptr;
  obs::Counter* m_misses_ = nullptr;
  obs::Counter* m_stores_ = nullptr;
  obs::Counter* m_too_large_ = nullptr;
  obs::Counter* m_skipped_ = nullptr;
};

}  // namespace talkserve::cache
