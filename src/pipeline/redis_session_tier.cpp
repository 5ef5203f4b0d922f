#include "talkserve/pipeline/redis_session_tier.hpp"

#include <spdlog/spdlog.h>

#include <stdexcept>
#include <utility>

namespace talkserve::pipeline {

namespace {
// Deletes the lock only if `token` still holds it.
constexpr std::string_view kUnlockScript =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";
}  // namespace

void RedisSessionTierConfig::validate() const {
  if (key_prefix.empty()) throw std::invalid_argument("redis.session_key_prefix: must not be empty");
  if (idle_ttl.count() < 1) throw std::invalid_argument("talk.session_ttl_s: must be >= 1");
  if (lock_ttl.count() < 1) throw std::invalid_argument("redis.session_lock_s: must be >= 1");
}

RedisSessionTier::RedisSessionTier(RedisSessionTierConfig config,
                                   std::shared_ptr<cache::RedisClient> client,
                                   obs::MetricsRegistry* metrics)
    : config_(std::move(config)), client_(std::move(client)) {
  config_.validate();
  if (!client_) throw std::invalid_argument("redis session tier: no client");
  if (metrics) {
    const char* loads_help = "Session lookups in the Redis tier.";
    m_found_ = &metrics->counter("talkserve_redis_session_loads_total", loads_help, {{"result", "found"}});
    m_absent_ = &metrics->counter("talkserve_redis_session_loads_total", loads_help, {{"result", "absent"}});
    m_saves_ = &metrics->counter("talkserve_redis_session_saves_total",
                                 "Session records written to the Redis tier.");
    m_skipped_ = &metrics->counter("talkserve_redis_session_skipped_total",
                                   "Session calls that went local-only: Redis could not be asked.");
  }
}

void RedisSessionTier::skipped() {
  if (m_skipped_) m_skipped_->inc();
}

SessionTier::Lock RedisSessionTier::lock(const std::string& id, const std::string& token) {
  const std::string key = lock_key_for(id);
  const std::string ms = std::to_string(std::chrono::milliseconds(config_.lock_ttl).count());
  auto r = client_->command("session_lock", {"SET", key, token, "NX", "PX", ms});
  if (!r.ok() || r.reply.type == cache::RedisReply::Type::error) {
    skipped();
    return Lock::unavailable;
  }
  // OK when taken; nil when another turn holds it.
  return r.reply.is_ok_status() ? Lock::acquired : Lock::busy;
}

void RedisSessionTier::unlock(const std::string& id, const std::string& token) {
  const std::string key = lock_key_for(id);
  auto r = client_->command("session_unlock", {"EVAL", kUnlockScript, "1", key, token});
  if (!r.ok()) skipped();  // the lock expires by itself (lock_ttl)
}

SessionTier::Load RedisSessionTier::load(const std::string& id, std::string& record) {
  auto r = client_->command("session_get", {"GET", key_for(id)});
  if (!r.ok() || r.reply.type == cache::RedisReply::Type::error) {
    skipped();
    return Load::unavailable;
  }
  if (r.reply.type == cache::RedisReply::Type::string) {
    record = std::move(r.reply.str);
    if (m_found_) m_found_->inc();
    return Load::found;
  }
  if (m_absent_) m_absent_->inc();
  return Load::absent;
}

bool RedisSessionTier::save(const std::string& id, const std::string& record) {
  const std::string ttl = std::to_string(config_.idle_ttl.count());
  auto r = client_->command("session_set", {"SET", key_for(id), record, "EX", ttl});
  if (!r.ok() || r.reply.type == cache::RedisReply::Type::error) {
    skipped();
    return false;
  }
  if (m_saves_) m_saves_->inc();
  return true;
}

}  // namespace talkserve::pipeline
