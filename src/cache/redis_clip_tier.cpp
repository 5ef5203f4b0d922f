#include "talkserve/cache/redis_clip_tier.hpp"

#include <spdlog/spdlog.h>

#include <stdexcept>
#include <utility>

#include "talkserve/cache/clip_key.hpp"

namespace talkserve::cache {

namespace {

RedisClientConfig client_config_of(const RedisClipTierConfig& c) {
  RedisClientConfig out;
  out.url = c.url;
  out.timeout = c.timeout;
  out.max_connections = c.max_connections;
  out.retry_min = c.retry_min;
  out.retry_max = c.retry_max;
  out.log_interval = c.log_interval;
  return out;
}

}  // namespace

void RedisClipTierConfig::validate() const {
  client_config_of(*this).validate();
  if (ttl.count() < 1) throw std::invalid_argument("redis.clip_ttl_s: must be >= 1");
  if (max_entry_bytes == 0) throw std::invalid_argument("redis.max_clip_mb: must be >= 1");
  if (key_prefix.empty()) throw std::invalid_argument("redis.key_prefix: must not be empty");
}

RedisClipTier::RedisClipTier(RedisClipTierConfig config, obs::MetricsRegistry* metrics,
                             sched::Clock& clock)
    : RedisClipTier(config, std::make_shared<RedisClient>(client_config_of(config), metrics, clock),
                    metrics) {}

RedisClipTier::RedisClipTier(RedisClipTierConfig config, std::shared_ptr<RedisClient> client,
                             obs::MetricsRegistry* metrics)
    : config_(std::move(config)), client_(std::move(client)) {
  config_.validate();
  if (!client_) throw std::invalid_argument("redis clip tier: no client");
  if (metrics) {
    m_hits_ = &metrics->counter("talkserve_redis_clip_hits_total",
                                "Clips found in the Redis tier after a local miss.");
    m_misses_ = &metrics->counter("talkserve_redis_clip_misses_total",
                                  "Redis tier lookups that found no clip.");
    m_stores_ = &metrics->counter("talkserve_redis_clip_stores_total",
                                  "Clips written to the Redis tier.");
    m_too_large_ = &metrics->counter("talkserve_redis_clip_skipped_total",
                                     "Redis tier calls not made.", {{"reason", "too_large"}});
    m_skipped_ = &metrics->counter("talkserve_redis_clip_skipped_total",
                                   "Redis tier calls not made.", {{"reason", "unavailable"}});
  }
  const auto& url = client_->url();
  if (ping()) {
    spdlog::info("redis clip tier: {}:{} db {} answers (ttl {} s, entries up to {} bytes)", url.host,
                 url.port, url.db, config_.ttl.count(), config_.max_entry_bytes);
  } else {
    spdlog::warn("redis clip tier: {}:{} does not answer yet; serving from the local cache "
                 "and retrying",
                 url.host, url.port);
  }
}

RedisClipTier::~RedisClipTier() = default;

std::string RedisClipTier::key_for(std::string_view id) const {
  return config_.key_prefix + std::string(id);
}

RedisClipTierStats RedisClipTier::stats() const {
  RedisClipTierStats s;
  {
    std::lock_guard lock(mutex_);
    s = stats_;
  }
  const auto c = client_->stats();
  s.skipped = c.skipped;
  s.errors = c.errors;
  s.connects = c.connects;
  return s;
}

void RedisClipTier::count_unavailable(const RedisResult& r) {
  if (r.status == RedisResult::Status::skipped && m_skipped_) m_skipped_->inc();
}

std::optional<std::string> RedisClipTier::get(std::string_view id) {
  if (!is_clip_id(id)) return std::nullopt;
  const std::string key = key_for(id);
  auto r = client_->command("get", {"GET", key});
  if (!r.ok()) {
    count_unavailable(r);
    return std::nullopt;
  }
  if (r.reply.type == RedisReply::Type::string) {
    std::lock_guard lock(mutex_);
    ++stats_.hits;
    if (m_hits_) m_hits_->inc();
    return std::move(r.reply.str);
  }
  if (r.reply.type == RedisReply::Type::nil) {
    std::lock_guard lock(mutex_);
    ++stats_.misses;
    if (m_misses_) m_misses_->inc();
  }
  // An error reply (or a key of another type) is absent for the caller; the client counted it.
  return std::nullopt;
}

RedisClipTier::PutResult RedisClipTier::put(std::string_view id, std::string_view bytes) {
  if (!is_clip_id(id)) return PutResult::unavailable;
  if (bytes.size() > config_.max_entry_bytes) {
    std::lock_guard lock(mutex_);
    ++stats_.too_large;
    if (m_too_large_) m_too_large_->inc();
    return PutResult::too_large;
  }
  const std::string key = key_for(id);
  const std::string ttl = std::to_string(config_.ttl.count());
  auto r = client_->command("set", {"SET", key, bytes, "EX", ttl});
  if (!r.ok()) {
    count_unavailable(r);
    return PutResult::unavailable;
  }
  if (r.reply.type == RedisReply::Type::error) {
    // e.g. OOM under maxmemory with noeviction: this clip stays local.
    spdlog::warn("redis clip tier: SET {} ({} bytes): {}", key, bytes.size(), r.reply.str);
    return PutResult::unavailable;
  }
  std::lock_guard lock(mutex_);
  ++stats_.stores;
  if (m_stores_) m_stores_->inc();
  return PutResult::stored;
}

bool RedisClipTier::erase(std::string_view id) {
  if (!is_clip_id(id)) return false;
  const std::string key = key_for(id);
  auto r = client_->command("del", {"DEL", key});
  if (!r.ok()) count_unavailable(r);
  return r.ok() && r.reply.type == RedisReply::Type::integer && r.reply.integer > 0;
}

std::optional<std::int64_t> RedisClipTier::ttl_seconds(std::string_view id) {
  if (!is_clip_id(id)) return std::nullopt;
  const std::string key = key_for(id);
  auto r = client_->command("ttl", {"TTL", key});
  if (!r.ok()) {
    count_unavailable(r);
    return std::nullopt;
  }
  if (r.reply.type == RedisReply::Type::integer && r.reply.integer >= 0) return r.reply.integer;
  return std::nullopt;
}

bool RedisClipTier::ping() { return client_->ping(); }

}  // namespace talkserve::cache
