// The Redis tier against a real redis-server (support/redis_server.hpp): two TieredClipStores
// with their own disk directories share clips through it; the TTL and the size cap; Redis
// killed or stalled mid-way (every call still answers from the disk tier, the failures are
// counted) and Redis back (used again after the back-off, driven by a manual clock).

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

#include "clip_bytes.hpp"
#include "support/redis_server.hpp"
#include "support/temp_dir.hpp"
#include "talkserve/cache/clip_key.hpp"
#include "talkserve/cache/redis_clip_tier.hpp"
#include "talkserve/cache/tiered_clip_store.hpp"
#include "talkserve/obs/metrics.hpp"
#include "talkserve/sched/clock.hpp"

using namespace std::chrono_literals;
using talkserve::cache::ClipCache;
using talkserve::cache::ClipCacheConfig;
using talkserve::cache::ClipKeyBuilder;
using talkserve::cache::parse_redis_url;
using talkserve::cache::PutStatus;
using talkserve::cache::RedisClipTier;
using talkserve::cache::RedisClipTierConfig;
using talkserve::cache::TieredClipStore;
using talkserve::obs::MetricsRegistry;
using talkserve::sched::ManualClock;
using talkserve::test::RedisServer;
using talkserve::test::TempDir;

using talkserve::cache::test::bytes_of;

namespace {

std::string id_of(std::string_view name) { return ClipKeyBuilder().field("redis-test", name).finish(); }

// One replica's store: its own disk directory and metrics, the shared Redis.
struct Replica {
  TempDir dir;
  MetricsRegistry metrics;
  std::unique_ptr<TieredClipStore> store;

  Replica(const RedisClipTierConfig& rc, talkserve::sched::Clock& clock) {
    ClipCacheConfig cc;
    cc.dir = dir.path() / "clips";
    cc.max_bytes = 64u << 20;
    store = std::make_unique<TieredClipStore>(std::make_unique<ClipCache>(cc, &metrics),
                                              std::make_unique<RedisClipTier>(rc, &metrics, clock));
  }
  double counter(const char* name, talkserve::obs::Labels labels = {}) {
    return metrics.counter(name, "", std::move(labels)).value();
  }
  double errors(const char* op) { return counter("talkserve_redis_errors_total", {{"op", op}}); }
  std::string read_all(const talkserve::cache::ClipInfo& info) {
    auto bytes = store->read(info, 0, info.size);
    REQUIRE(bytes);
    return *bytes;
  }
};

RedisClipTierConfig tier_config(const RedisServer& redis) {
  RedisClipTierConfig rc;
  rc.url = redis.url();
  rc.ttl = 3600s;
  rc.timeout = 200ms;
  rc.retry_min = 1s;
  rc.retry_max = 8s;
  return rc;
}

}  // namespace

TEST_CASE("redis tier: a clip put by one replica is a hit on the other, bytes equal",
          "[cache][redis]") {
  RedisServer redis;
  ManualClock clock;
  auto rc = tier_config(redis);
  Replica a(rc, clock), b(rc, clock);

  const std::string id = id_of("shared"), bytes = bytes_of("shared", 300'000);
  REQUIRE(a.store->put(id, bytes) == PutStatus::stored);
  CHECK(a.counter("talkserve_redis_clip_stores_total") == 1);

  REQUIRE_FALSE(b.store->disk().contains(id));
  const auto t0 = std::chrono::steady_clock::now();
  auto info = b.store->get(id);
  const double hit_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  REQUIRE(info);
  WARN("Redis hit of a " << bytes.size() << "-byte clip, copied to disk: " << hit_ms << " ms");
  CHECK(info->size == bytes.size());
  CHECK(info->etag == "\"" + id + "\"");
  CHECK(std::filesystem::exists(info->path));  // served from B's own disk from now on
  CHECK(b.read_all(*info) == bytes);
  CHECK(b.store->disk().contains(id));
  CHECK(b.counter("talkserve_redis_clip_hits_total") == 1);

  // The second lookup on B is a disk hit: Redis is not asked again.
  REQUIRE(b.store->get(id));
  CHECK(b.counter("talkserve_redis_clip_hits_total") == 1);

  // Unknown to both tiers: a miss, counted once in each.
  CHECK_FALSE(b.store->get(id_of("nobody")));
  CHECK(b.counter("talkserve_redis_clip_misses_total") == 1);
  CHECK(b.errors("get") == 0);

  // Erased from both tiers.
  CHECK(a.store->erase(id));
  CHECK_FALSE(a.store->redis().get(id));
  CHECK(redis.command("DBSIZE") == ":0");
}

TEST_CASE("redis tier: keys carry the prefix and the configured TTL", "[cache][redis]") {
  RedisServer redis;
  ManualClock clock;
  auto rc = tier_config(redis);
  rc.key_prefix = "replicas:test:";
  rc.ttl = 120s;
  Replica a(rc, clock);
  const std::string id = id_of("ttl");
  REQUIRE(a.store->put(id, bytes_of("ttl", 1000)) == PutStatus::stored);
  auto ttl = a.store->redis().ttl_seconds(id);
  REQUIRE(ttl);
  CHECK(*ttl > 110);
  CHECK(*ttl <= 120);
  CHECK(redis.command("EXISTS replicas:test:" + id) == ":1");
  CHECK(redis.command("TTL replicas:test:" + id).starts_with(":1"));
}

TEST_CASE("redis tier: clips above the size cap stay local", "[cache][redis]") {
  RedisServer redis;
  ManualClock clock;
  auto rc = tier_config(redis);
  rc.max_entry_bytes = 10'000;
  Replica a(rc, clock), b(rc, clock);

  const std::string big = id_of("big"), fits = id_of("fits");
  REQUIRE(a.store->put(big, bytes_of("big", 10'001)) == PutStatus::stored);
  REQUIRE(a.store->put(fits, bytes_of("fits", 10'000)) == PutStatus::stored);
  CHECK(a.store->get(big));  // local hit on A
  CHECK(a.store->redis().stats().too_large == 1);
  CHECK(a.counter("talkserve_redis_clip_skipped_total", {{"reason", "too_large"}}) == 1);
  CHECK_FALSE(b.store->get(big));
  auto info = b.store->get(fits);
  REQUIRE(info);
  CHECK(b.read_all(*info) == bytes_of("fits", 10'000));
  CHECK(redis.command("DBSIZE") == ":1");
}

TEST_CASE("redis tier: Redis killed mid-way, every call answers locally, and used again once back",
          "[cache][redis]") {
  RedisServer redis;
  ManualClock clock;
  auto rc = tier_config(redis);
  Replica a(rc, clock), b(rc, clock);

  const std::string first = id_of("first");
  REQUIRE(a.store->put(first, bytes_of("first", 5000)) == PutStatus::stored);
  REQUIRE(b.store->get(first));  // both have a pooled connection now

  redis.kill();
  // A's pooled connection is dead: the SET fails, the clip is still stored on disk.
  const std::string second = id_of("second");
  CHECK(a.store->put(second, bytes_of("second", 5000)) == PutStatus::stored);
  CHECK(a.errors("set") == 1);
  CHECK(a.store->get(second));
  CHECK(a.store->get(first));
  // B's GET fails: a miss, not an exception.
  CHECK_FALSE(b.store->get(second));
  CHECK(b.errors("get") == 1);
  CHECK(b.metrics.gauge("talkserve_redis_up", "").value() == 0);

  // Backing off: no network, calls skipped (counted, not errors).
  const auto skipped = b.store->redis().stats().skipped;
  CHECK_FALSE(b.store->get(id_of("third")));
  CHECK(b.store->redis().stats().skipped == skipped + 1);
  CHECK(b.errors("get") == 1);

  // After the back-off, Redis still down: a failed connect, then a longer back-off.
  clock.advance(1s);
  CHECK_FALSE(b.store->get(second));
  CHECK(b.errors("connect") == 1);

  // Redis back (empty: no persistence). After the back-off both replicas use it again.
  redis.start();
  clock.advance(8s);
  const std::string fourth = id_of("fourth");
  REQUIRE(a.store->put(fourth, bytes_of("fourth", 7000)) == PutStatus::stored);
  CHECK(a.store->redis().stats().stores == 2);
  auto info = b.store->get(fourth);
  REQUIRE(info);
  CHECK(b.read_all(*info) == bytes_of("fourth", 7000));
  CHECK(b.metrics.gauge("talkserve_redis_up", "").value() == 1);
  CHECK(a.errors("set") == 1);
  CHECK(b.errors("get") == 1);
}

TEST_CASE("redis tier: a stalled Redis costs at most the timeout", "[cache][redis]") {
  RedisServer redis;
  ManualClock clock;
  auto rc = tier_config(redis);
  rc.timeout = 100ms;
  Replica a(rc, clock);
  REQUIRE(a.store->redis().ping());

  redis.pause();
  const std::string id = id_of("stalled");
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(a.store->put(id, bytes_of("stalled", 2000)) == PutStatus::stored);
  CHECK_FALSE(a.store->get(id_of("other")));  // skipped: backing off
  const auto took = std::chrono::steady_clock::now() - t0;
  CHECK(took < 2s);
  CHECK(a.errors("set") == 1);
  CHECK(a.store->get(id));  // local
  redis.resume();
  clock.advance(1s);
  CHECK(a.store->redis().ping());
}

TEST_CASE("redis tier: URLs and config", "[cache][redis]") {
  auto u = parse_redis_url("redis://10.0.0.5:6380/3");
  CHECK(u.host == "10.0.0.5");
  CHECK(u.port == 6380);
  CHECK(u.db == 3);
  u = parse_redis_url("redis://:secret@cache.internal");
  CHECK(u.host == "cache.internal");
  CHECK(u.port == 6379);
  CHECK(u.password == "secret");
  CHECK(u.user.empty());
  u = parse_redis_url("redis://app:pw@[::1]:7000/0");
  CHECK(u.host == "::1");
  CHECK(u.port == 7000);
  CHECK(u.user == "app");
  for (const char* bad : {"", "http://x", "redis://", "redis://h:0", "redis://h:99999",
                          "redis://h:/0", "redis://h/x", "redis://[::1"}) {
    INFO(bad);
    CHECK_THROWS_WITH(parse_redis_url(bad), Catch::StartsWith("redis.url: "));
  }
  // Unreachable at start: the tier is built anyway (the server must start without Redis).
  ManualClock clock;
  RedisClipTierConfig rc;
  rc.url = "redis://127.0.0.1:1/0";
  rc.timeout = 100ms;
  MetricsRegistry m;
  RedisClipTier tier(rc, &m, clock);
  CHECK(m.counter("talkserve_redis_errors_total", "", {{"op", "connect"}}).value() == 1);
  CHECK(tier.put(id_of("x"), "abc") == RedisClipTier::PutResult::unavailable);
}
