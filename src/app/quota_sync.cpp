#include "quota_sync.hpp"

#include <spdlog/spdlog.h>

#include <stdexcept>
#include <string_view>

#include "talkserve/cache/redis_client.hpp"
#include "talkserve/gateway/gateway.hpp"
#include "talkserve/obs/metrics.hpp"

namespace talkserve::app {

namespace {

// KEYS[1] the counter, ARGV[1] the count to add (may be 0 or negative), ARGV[2] its TTL in s.
// Returns the counter's new value. A counter without a TTL gets one, also when a replica died
// between creating it and setting it.
constexpr std::string_view kIncrementScript =
    "local t = redis.call('INCRBY', KEYS[1], ARGV[1]) "
    "if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end "
    "return t";

}  // namespace

QuotaSync::QuotaSync(gateway::Gateway& gateway, std::shared_ptr<cache::RedisClient> redis,
                     QuotaSyncConfig config, sched::Clock& clock, obs::MetricsRegistry& metrics)
    : gateway_(gateway),
      redis_(std::move(redis)),
      config_(std::move(config)),
      clock_(clock),
      syncs_(metrics.counter("talkserve_quota_syncs_total",
                             "Per-key quota counters exchanged with the shared Redis tier.")),
      failures_(metrics.counter(
          "talkserve_quota_sync_failures_total",
          "Per-key quota exchanges that failed or were skipped (Redis down or backing off); "
          "the counts go with the next exchange.")) {
  if (!redis_) throw std::invalid_argument("quota sync: no Redis client");
  if (config_.interval.count() <= 0) throw std::invalid_argument("quota sync: interval must be > 0");
  if (config_.window.count() <= 0) throw std::invalid_argument("quota sync: window must be > 0");
}

QuotaSync::~QuotaSync() { stop(); }

std::string QuotaSync::counter_key(std::int64_t window, const std::string& key_name) const {
  return config_.key_prefix + std::to_string(config_.window.count()) + ":" +
         std::to_string(config_.wall_index + window) + ":" + key_name;
}

QuotaSyncResult QuotaSync::sync_once() {
  std::lock_guard lock(sync_mutex_);
  QuotaSyncResult result;
  const std::string ttl = std::to_string(2 * config_.window.count());
  for (const auto& [name, quota] : gateway_.quotas()) {
    const auto unsynced = quota->take_unsynced(clock_.now());
    const std::string key = counter_key(unsynced.window, name);
    const std::string count = std::to_string(unsynced.count);
    auto r = redis_->command("quota", {"EVAL", kIncrementScript, "1", key, count, ttl});
    if (!r.ok() || r.reply.type != cache::RedisReply::Type::integer) {
      // An error reply (e.g. the key holds something else) is counted by the client as an
      // error of op "quota"; either way the count stays for the next exchange.
      quota->restore_unsynced(unsynced);
      failures_.inc();
      ++result.failed;
      continue;
    }
    quota->apply_shared(unsynced.window, r.reply.integer);
    syncs_.inc();
    ++result.synced;
  }
  return result;
}

void QuotaSync::start() {
  if (thread_.joinable()) return;
  {
    std::lock_guard lock(mutex_);
    stopping_ = false;
  }
  thread_ = std::thread([this] {
    std::unique_lock lock(mutex_);
    while (!cv_.wait_for(lock, config_.interval, [this] { return stopping_; })) {
      lock.unlock();
      try {
        sync_once();
      } catch (const std::exception& e) {
        spdlog::warn("quota sync: {}", e.what());
      }
      lock.lock();
    }
  });
}

void QuotaSync::stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
  try {
    sync_once();
  } catch (const std::exception& e) {
    spdlog::warn("quota sync: {}", e.what());
  }
}

}  // namespace talkserve::app
