// Request quotas counted across replicas: two gateways (two "replicas") share one real
// redis-server through QuotaSync; what one admits is refused by the other once the shared
// count reaches the limit, and Redis going away leaves each with its own count, no error.

#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <string>

#include "quota_sync.hpp"
#include "support/redis_server.hpp"
#include "talkserve/cache/redis_client.hpp"
#include "talkserve/gateway/gateway.hpp"
#include "talkserve/obs/metrics.hpp"
#include "talkserve/sched/clock.hpp"

using namespace talkserve;
using namespace std::chrono_literals;
using talkserve::test::RedisServer;

namespace {

gateway::GatewayConfig config_with_quota(std::uint64_t per_day) {
  gateway::GatewayConfig cfg;
  gateway::ApiKeyConfig alice{"alice", "sk-alice", "", gateway::Tier::standard, 1000.0, 1000.0,
                              std::nullopt};
  alice.requests_per_day = per_day;
  cfg.keys.push_back(alice);
  gateway::ApiKeyConfig bob{"bob", "sk-bob", "", gateway::Tier::standard, 1000.0, 1000.0,
                            std::nullopt};
  cfg.keys.push_back(bob);  // no quota: not synced
  return cfg;
}

struct Replica {
  Replica(const RedisServer& redis, sched::ManualClock& clock, std::uint64_t per_day,
          std::int64_t wall_index = 20419)
      : gateway(config_with_quota(per_day), clock, metrics, 6h) {
    cache::RedisClientConfig rc;
    rc.url = redis.url();
    rc.timeout = 200ms;
    rc.retry_min = 1ms;
    rc.retry_max = 1ms;
    app::QuotaSyncConfig qc;
    qc.wall_index = wall_index;
    sync = std::make_unique<app::QuotaSync>(
        gateway, std::make_shared<cache::RedisClient>(rc, &metrics, clock), qc, clock, metrics);
  }
  bool admit() { return gateway.admit("Bearer sk-alice", true).ok(); }
  double counter(const std::string& name) {
    return metrics.counter(name, "").value();
  }

  obs::MetricsRegistry metrics;
  gateway::Gateway gateway;
  std::unique_ptr<app::QuotaSync> sync;
};

}  // namespace

TEST_CASE("quota sync: two replicas count one quota per key", "[app][quota][redis]") {
  RedisServer redis;
  sched::ManualClock clock(sched::Clock::time_point{1000s});
  Replica a(redis, clock, 5), b(redis, clock, 5);

  CHECK(a.admit());
  CHECK(a.admit());
  CHECK(a.admit());
  auto r = a.sync->sync_once();
  CHECK(r.synced == 1);  // alice only: bob has no quota
  CHECK(r.failed == 0);
  // The counter: <prefix><window s>:<window since the epoch>:<key>, with a TTL of two windows.
  const std::string key = "talkserve:quota:86400:20419:alice";
  CHECK(redis.command("INCRBY " + key + " 0") == ":3");
  const std::string ttl = redis.command("TTL " + key);
  CHECK(std::stoi(ttl.substr(1)) > 86400);

  CHECK(b.sync->sync_once().synced == 1);  // B learns the 3
  CHECK(b.admit());
  CHECK(b.admit());
  auto over = b.gateway.admit("Bearer sk-alice", true);
  CHECK(over.status == gateway::AdmissionStatus::quota_exceeded);
  CHECK(over.retry_after_s == 18 * 3600);  // the window started 6 h before the gateways

  // A has not heard of B's 2 yet: it admits up to its own view (3 + 2 more) ...
  b.sync->sync_once();
  a.sync->sync_once();
  // ... but after the exchange it knows the quota is spent.
  CHECK_FALSE(a.admit());
  CHECK(a.counter("talkserve_quota_syncs_total") == 2);

  // The next window (18 h later) starts whole on both, under a new counter.
  clock.advance(18h);
  CHECK(a.admit());
  a.sync->sync_once();
  CHECK(redis.command("INCRBY talkserve:quota:86400:20420:alice 0") == ":1");
  b.sync->sync_once();
  CHECK(b.gateway.quotas()[0].quota->used_shared(clock.now()) == 1);
}

TEST_CASE("quota sync: a restarted replica keeps its keys' count", "[app][quota][redis]") {
  RedisServer redis;
  sched::ManualClock clock(sched::Clock::time_point{1000s});
  {
    Replica a(redis, clock, 3);
    CHECK(a.admit());
    CHECK(a.admit());
    a.sync->start();
    a.sync->stop();  // the last exchange on the way out
  }
  Replica again(redis, clock, 3);
  CHECK(again.sync->sync_once().synced == 1);
  CHECK(again.admit());
  CHECK_FALSE(again.admit());
}

TEST_CASE("quota sync: with Redis gone each replica counts alone and nothing fails",
          "[app][quota][redis]") {
  RedisServer redis;
  sched::ManualClock clock(sched::Clock::time_point{1000s});
  Replica a(redis, clock, 4), b(redis, clock, 4);
  CHECK(a.admit());
  CHECK(a.sync->sync_once().synced == 1);

  redis.kill();
  CHECK(a.admit());
  auto r = a.sync->sync_once();
  CHECK(r.synced == 0);
  CHECK(r.failed == 1);
  CHECK(a.counter("talkserve_quota_sync_failures_total") == 1);
  // B never reached Redis: it has the whole quota to itself.
  CHECK(b.sync->sync_once().failed == 1);
  for (int i = 0; i < 4; ++i) CHECK(b.admit());
  CHECK_FALSE(b.admit());
  // A enforces what it counted (2 of 4).
  CHECK(a.admit());
  CHECK(a.admit());
  CHECK_FALSE(a.admit());

  // Redis back (empty): the counts that could not be sent go with the next exchange.
  redis.start();
  clock.advance(5ms);  // past the client's back-off
  CHECK(a.sync->sync_once().synced == 1);
  CHECK(redis.command("INCRBY talkserve:quota:86400:20419:alice 0") == ":3");
  CHECK(b.sync->sync_once().synced == 1);
  CHECK(b.gateway.quotas()[0].quota->used_shared(clock.now()) == 7);  // 4 + 3 (A's since the kill)
}
