#pragma once
// QuotaSync: one request quota per API key across every replica that shares a Redis ([redis]
// with url set and quotas = true). Built only with the Redis tier (TALKSERVE_HAVE_REDIS).
//
// Admission never waits on Redis: each replica counts locally (RequestQuota) and a background
// thread, every `interval`, adds what it counted since the last exchange to one shared counter
// per key and window and learns the total, from which the other replicas' share follows (see
// request_quota.hpp). One round-trip per key: a Lua script that INCRBYs the counter and gives a
// new counter a TTL of two windows, so counters of past windows expire by themselves.
//
// Keys: <key_prefix><window seconds>:<window index since the Unix epoch>:<API key name>, e.g.
// "talkserve:quota:86400:20419:alice". Replicas must share the keys file (the names) and
// gateway.quota_window_s; the window index comes from the wall clock at start-up (`wall_index`).
//
// Redis down or slow: the exchange fails or is skipped (RedisClient's back-off), the counts stay
// unsynced and go with the next exchange, and each replica enforces the quota on what it knows;
// no request fails because of it. Counted in talkserve_quota_sync_failures_total and
// talkserve_redis_errors_total{op="quota"}.
//
// Thread-safety: sync_once() may be called from any thread; start()/stop() from one thread.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "talkserve/sched/clock.hpp"

namespace talkserve::cache {
class RedisClient;
}
namespace talkserve::gateway {
class Gateway;
}
namespace talkserve::obs {
class Counter;
class MetricsRegistry;
}  // namespace talkserve::obs

namespace talkserve::app {

struct QuotaSyncConfig {
  std::string key_prefix = "talkserve:quota:";
  std::chrono::milliseconds interval{1000};
  std::chrono::seconds window{86'400};  // gateway.quota_window_s
  // Wall-clock window index (since the Unix epoch) of the gateway's window 0.
  std::int64_t wall_index = 0;
};

struct QuotaSyncResult {
  std::size_t synced = 0;  // keys whose counter was exchanged
  std::size_t failed = 0;  // keys whose exchange failed or was skipped (Redis down, backing off)
};

class QuotaSync {
 public:
  // `gateway`, `clock` (the gateway's) and `metrics` must outlive this object.
  QuotaSync(gateway::Gateway& gateway, std::shared_ptr<cache::RedisClient> redis,
            QuotaSyncConfig config, sched::Clock& clock, obs::MetricsRegistry& metrics);
  ~QuotaSync();  // stop()
  QuotaSync(const QuotaSync&) = delete;
  QuotaSync& operator=(const QuotaSync&) = delete;

  // One exchange for every key with a quota.
  QuotaSyncResult sync_once();
  // Runs sync_once() every interval on a thread of its own.
  void start();
  // Stops the thread after a last exchange (so that counts admitted just before a shutdown
  // reach the other replicas). Idempotent.
  void stop();

 private:
  std::string counter_key(std::int64_t window, const std::string& key_name) const;

  gateway::Gateway& gateway_;
  std::shared_ptr<cache::RedisClient> redis_;
  QuotaSyncConfig config_;
  sched::Clock& clock_;
  obs::Counter& syncs_;
  obs::Counter& failures_;
  std::mutex sync_mutex_;  // one exchange at a time: apply_shared() needs the pushes in order

  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace talkserve::app
