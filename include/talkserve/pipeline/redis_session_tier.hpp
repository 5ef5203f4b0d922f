#pragma once
// RedisSessionTier: conversation sessions shared between replicas through Redis, on the same
// client (connection pool, back-off, error counting) as the clip tier. Built only with hiredis
// (TALKSERVE_HAVE_REDIS).
//
// Keys: `<key_prefix><id>` holds the session record (serialize_session) with EX idle_ttl,
// refreshed by every save; `<key_prefix><id>:turn` is the turn lock, SET NX PX lock_ttl with a
// random token and deleted by a compare-and-delete script, so a lock that outlived its holder
// (a replica killed mid-turn) expires by itself and a late unlock never frees another's lock.
//
// Metrics: talkserve_redis_session_loads_total{result="found|absent"},
// talkserve_redis_session_saves_total, talkserve_redis_session_skipped_total (calls that went
// local-only because Redis could not be asked); failures are in talkserve_redis_errors_total
// {op="session_lock|session_unlock|session_get|session_set"}.
//
// Thread-safety: every method may be called concurrently from any thread.

#include <chrono>
#include <memory>
#include <string>

#include "talkserve/cache/redis_client.hpp"
#include "talkserve/obs/metrics.hpp"
#include "talkserve/pipeline/session_store.hpp"

namespace talkserve::pipeline {

struct RedisSessionTierConfig {
  std::string key_prefix = "talkserve:session:";
  std::chrono::seconds idle_ttl{1800};     // the record's TTL (talk.session_ttl_s)
  std::chrono::seconds lock_ttl{120};      // a turn longer than this loses its lock
  void validate() const;                   // std::invalid_argument naming the key
};

class RedisSessionTier : public SessionTier {
 public:
  RedisSessionTier(RedisSessionTierConfig config, std::shared_ptr<cache::RedisClient> client,
                   obs::MetricsRegistry* metrics = nullptr);

  Lock lock(const std::string& id, const std::string& token) override;
  void unlock(const std::string& id, const std::string& token) override;
  Load load(const std::string& id, std::string& record) override;
  bool save(const std::string& id, const std::string& record) override;

  std::string key_for(const std::string& id) const { return config_.key_prefix + id; }
  std::string lock_key_for(const std::string& id) const { return key_for(id) + ":turn"; }

 private:
  void skipped();

  RedisSessionTierConfig config_;
  std::shared_ptr<cache::RedisClient> client_;
  obs::Counter* m_found_ = nullptr;
  obs::Counter* m_absent_ = nullptr;
  obs::Counter* m_saves_ = nullptr;
  obs::Counter* m_skipped_ = nullptr;
};

}  // namespace talkserve::pipeline
