#pragma once
// RedisClient: the connection pool every Redis-backed tier shares (the clip tier, the session
// tier). Built only when hiredis is found (TALKSERVE_HAVE_REDIS).
//
// Redis is an optimisation, never a dependency: every failure (refused connection, timeout,
// dropped connection) is counted in talkserve_redis_errors_total{op}, logged at most once per
// log_interval (with the count of errors not logged), and reported to the caller as `failed`
// so that it carries on locally. After a failure the client backs off (retry_min, doubling up
// to retry_max, on the injected clock): until then calls do not touch the network and answer
// `skipped`. The first call after the back-off reconnects.
//
// Connections: a small pool (at most max_connections, opened on demand, kept idle between
// calls). A failure discards every idle connection (they are likely dead too, e.g. after a
// Redis restart); connections in use at that moment are closed when they come back.
//
// Thread-safety: every public method may be called concurrently from any thread. Network I/O
// happens outside the pool's mutex; each command holds one connection.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "talkserve/obs/metrics.hpp"
#include "talkserve/sched/clock.hpp"

struct redisContext;

namespace talkserve::cache {

struct RedisUrl {
  std::string host;
  std::uint16_t port = 6379;
  int db = 0;
  std::string user;      // empty: AUTH <password> (Redis < 6 style)
  std::string password;  // empty: no AUTH
};

// Parses a redis:// URL. Throws std::invalid_argument("redis.url: ...") when malformed.
RedisUrl parse_redis_url(std::string_view url);

struct RedisClientConfig {
  // "redis://[[user]:password@]host[:port][/db]"; port defaults to 6379 and db to 0.
  std::string url;
  std::chrono::milliseconds timeout{250};          // connect, and each socket read/write
  std::size_t max_connections = 4;
  std::chrono::milliseconds retry_min{100};        // back-off after the first failure
  std::chrono::milliseconds retry_max{10'000};     // back-off cap (doubling from retry_min)
  std::chrono::milliseconds log_interval{10'000};  // at most one failure message per interval
  // Throws std::invalid_argument naming the key ("redis.url", "redis.timeout_ms", ...).
  void validate() const;
};

struct RedisReply {
  enum class Type { nil, string, integer, status, error, array };
  Type type = Type::nil;
  std::string str;  // string, status and error replies
  long long integer = 0;
  std::vector<RedisReply> elements;  // array replies
  bool is_ok_status() const { return type == Type::status && str == "OK"; }
};

struct RedisResult {
  enum class Status {
    ok,       // Redis answered (the reply may still be an error reply: see reply.type)
    skipped,  // not attempted: backing off after a failure, or every connection stayed busy
    failed,   // connecting or the exchange failed (counted and logged)
  };
  Status status = Status::failed;
  RedisReply reply;
  bool ok() const { return status == Status::ok; }
};

struct RedisClientStats {
  std::uint64_t skipped = 0;   // calls skipped while backing off or out of connections
  std::uint64_t errors = 0;    // failed connects, exchanges and error replies
  std::uint64_t connects = 0;  // connections opened
};

class RedisClient {
 public:
  // Validates the config (std::invalid_argument). Does not connect: call ping() for that.
  // `metrics` (optional) and `clock` must outlive the client.
  explicit RedisClient(RedisClientConfig config, obs::MetricsRegistry* metrics = nullptr,
                       sched::Clock& clock = sched::steady_clock());
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Thread-safe. Runs one command (binary-safe arguments). `op` labels its errors in
  // talkserve_redis_errors_total{op} and in log lines ("get", "set", "session_lock", ...).
  // An error reply is counted as an error of `op` but keeps the connection.
  RedisResult command(std::string_view op, std::initializer_list<std::string_view> argv);
  // Thread-safe. PING (reconnecting if the back-off allows): true on PONG.
  bool ping();

  RedisClientStats stats() const;
  const RedisUrl& url() const { return url_; }
  const RedisClientConfig& config() const { return config_; }

 private:
  struct Lease {
    redisContext* ctx = nullptr;
    std::uint64_t generation = 0;
  };
  // A connection to use, or nullopt with `why` skipped/failed (already counted).
  std::optional<Lease> acquire(RedisResult::Status& why);
  // Gives a connection back; `ok` false discards it and every idle one and starts a back-off.
  void release(Lease lease, bool ok, std::string_view op, const std::string& why);
  redisContext* connect(std::string& why);
  void failure_locked(std::string_view op, const std::string& why, std::vector<redisContext*>& to_free);
  void count_error_locked(std::string_view op);

  RedisClientConfig config_;
  RedisUrl url_;
  sched::Clock& clock_;
  obs::MetricsRegistry* metrics_;

  mutable std::mutex mutex_;
  std::condition_variable idle_cv_;
  std::vector<redisContext*> idle_;
  std::size_t open_ = 0;                 // idle + leased
  std::uint64_t generation_ = 0;         // bumped by every failure
  std::uint32_t failures_ = 0;           // consecutive, for the back-off
  sched::Clock::time_point retry_at_{};  // no network before this after a failure
  sched::Clock::time_point last_log_{};
  bool logged_once_ = false;
  std::uint64_t unlogged_ = 0;  // failures since the last message
  RedisClientStats stats_;

  std::map<std::string, obs::Counter*, std::less<>> m_errors_;  // by op, created on first use
  obs::Gauge* m_up_ = nullptr;
};

}  // namespace talkserve::cache
