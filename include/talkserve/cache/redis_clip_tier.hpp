#pragma once
// RedisClipTier: clips shared between talkserve replicas through one Redis server.
// Built only when hiredis is found (TALKSERVE_HAVE_REDIS, see TalkserveDependencies.cmake).
//
// A clip is one Redis string, key `<key_prefix><id>`, value exactly the clip's bytes, written
// with SET ... EX ttl. Clips larger than max_entry_bytes are not stored (a replica renders them
// itself), which keeps one big clip from evicting many small ones in a shared Redis.
//
// Redis is an optimisation, never a dependency: every failure (refused connection, timeout,
// dropped connection, error reply) is counted in talkserve_redis_errors_total{op}, logged at
// most once per log_interval (with the count of errors not logged), and answered as "absent" /
// "not stored" so that the caller carries on with its local tier. After a failure the tier
// backs off (retry_min, doubling up to retry_max, on the injected clock): until then calls do
// not touch the network and count talkserve_redis_clip_skipped_total{reason="unavailable"}.
// The first call after the back-off reconnects.
//
// Connections: a small pool (at most max_connections, opened on demand, kept idle between
// calls). A failure discards every idle connection (they are likely dead too, e.g. after a
// Redis restart); connections in use at that moment are closed when they come back.
//
// Thread-safety: every public method may be called concurrently from any thread. Network I/O
// happens outside the pool's mutex; each call holds one connection for its command.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "talkserve/obs/metrics.hpp"
#include "talkserve/sched/clock.hpp"

struct redisContext;

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

struct RedisUrl {
  std::string host;
  std::uint16_t port = 6379;
  int db = 0;
  std::string user;      // empty: AUTH <password> (Redis < 6 style)
  std::string password;  // empty: no AUTH
};

// Parses a redis:// URL. Throws std::invalid_argument("redis.url: ...") when malformed.
RedisUrl parse_redis_url(std::string_view url);

struct RedisClipTierStats {
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
  std::uint64_t stores = 0;
  std::uint64_t too_large = 0;    // puts skipped by the size cap
  std::uint64_t skipped = 0;      // calls skipped while backing off
  std::uint64_t errors = 0;       // failed connects and commands
  std::uint64_t connects = 0;     // connections opened
};

class RedisClipTier {
 public:
  enum class PutResult { stored, too_large, unavailable };

  // Validates the config (std::invalid_argument) and tries one connection, logging whether
  // Redis answered; an unreachable Redis is not an error here. `metrics` (optional) and `clock`
  // must outlive the tier.
  explicit RedisClipTier(RedisClipTierConfig config, obs::MetricsRegistry* metrics = nullptr,
                         sched::Clock& clock = sched::steady_clock());
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

 private:
  struct Lease {
    redisContext* ctx = nullptr;
    std::uint64_t generation = 0;
  };
  enum class Op { connect, get, set, del, ttl, ping };

  // A connection to use, or nullopt (backing off, or connecting failed: already counted).
  std::optional<Lease> acquire(Op op);
  // Gives a connection back; `ok` false discards it and every idle one and starts a back-off.
  void release(Lease lease, bool ok, Op op, const std::string& why);
  redisContext* connect(std::string& why);
  void failure_locked(Op op, const std::string& why, std::vector<redisContext*>& to_free);
  void count_error(Op op);
  static std::string_view op_name(Op op);

  RedisClipTierConfig config_;
  RedisUrl url_;
  sched::Clock& clock_;

  mutable std::mutex mutex_;
  std::condition_variable idle_cv_;
  std::vector<redisContext*> idle_;
  std::size_t open_ = 0;                    // idle + leased
  std::uint64_t generation_ = 0;            // bumped by every failure
  std::uint32_t failures_ = 0;              // consecutive, for the back-off
  sched::Clock::time_point retry_at_{};     // no network before this after a failure
  sched::Clock::time_point last_log_{};
  bool logged_once_ = false;
  std::uint64_t unlogged_ = 0;              // failures since the last message
  RedisClipTierStats stats_;

  obs::Counter* m_hits_ = nullptr;
  obs::Counter* m_misses_ = nullptr;
  obs::Counter* m_stores_ = nullptr;
  obs::Counter* m_too_large_ = nullptr;
  obs::Counter* m_skipped_ = nullptr;
  obs::Counter* m_errors_[6] = {};
  obs::Gauge* m_up_ = nullptr;
};

}  // namespace talkserve::cache
