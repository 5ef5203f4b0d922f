// Sessions shared by two replicas through a real redis-server (support/redis_server.hpp): each
// replica has its own SessionStore, client and metrics, as two talkserve processes would.

#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "support/redis_server.hpp"
#include "talkserve/cache/redis_client.hpp"
#include "talkserve/obs/metrics.hpp"
#include "talkserve/pipeline/redis_session_tier.hpp"
#include "talkserve/pipeline/session_store.hpp"
#include "talkserve/sched/clock.hpp"

using namespace std::chrono_literals;
using talkserve::cache::RedisClient;
using talkserve::cache::RedisClientConfig;
using talkserve::obs::MetricsRegistry;
using talkserve::pipeline::RedisSessionTier;
using talkserve::pipeline::RedisSessionTierConfig;
using talkserve::pipeline::SessionConfig;
using talkserve::pipeline::SessionStore;
using talkserve::pipeline::TurnRecord;
using talkserve::sched::ManualClock;
using talkserve::test::RedisServer;
using Refusal = SessionStore::Refusal;

namespace {

// A finished turn that keeps the session's voice and avatar.
TurnRecord turn(std::string user, std::string assistant) { return TurnRecord{std::move(user), std::move(assistant), "", ""}; }

struct Replica {
  MetricsRegistry metrics;
  std::shared_ptr<RedisClient> client;
  std::shared_ptr<RedisSessionTier> tier;
  std::unique_ptr<SessionStore> store;

  Replica(const RedisServer& redis, talkserve::sched::Clock& clock, std::chrono::seconds lock_ttl = 120s) {
    RedisClientConfig cc;
    cc.url = redis.url();
    client = std::make_shared<RedisClient>(cc, &metrics, clock);
    RedisSessionTierConfig tc;
    tc.idle_ttl = 600s;
    tc.lock_ttl = lock_ttl;
    tier = std::make_shared<RedisSessionTier>(tc, client, &metrics);
    store = std::make_unique<SessionStore>(SessionConfig{}, clock, tier);
  }
  double counter(const char* name, talkserve::obs::Labels labels = {}) {
    return metrics.counter(name, "", std::move(labels)).value();
  }
};

}  // namespace

TEST_CASE("redis sessions: a session started on one replica continues on the other",
          "[pipeline][sessions][redis]") {
  RedisServer redis;
  ManualClock clock;
  Replica a(redis, clock), b(redis, clock);
  std::string why;
  const auto id = a.store->begin_turn("", &why)->id;
  a.store->end_turn(id, TurnRecord{"what is a star", "a star is a sun", "en-gb", "nasa"});

  auto on_b = b.store->begin_turn(id, &why);
  REQUIRE(on_b);
  REQUIRE(on_b->history.size() == 2);
  CHECK(on_b->history[0].content == "what is a star");
  CHECK(on_b->history[1].content == "a star is a sun");
  CHECK(on_b->voice == "en-gb");
  CHECK(on_b->avatar == "nasa");
  CHECK(b.counter("talkserve_redis_session_loads_total", {{"result", "found"}}) == 1);
  b.store->end_turn(id, TurnRecord{"and the moon", "the moon is a rock", "", ""});

  // Back on A: its local copy (one turn) is older than the shared one (two turns).
  auto back = a.store->begin_turn(id, &why);
  REQUIRE(back);
  REQUIRE(back->history.size() == 4);
  CHECK(back->history[3].content == "the moon is a rock");
  CHECK(back->voice == "en-gb");  // B's turn named no voice: the session keeps its own
  CHECK(back->version == 2);
  a.store->abort_turn(id);

  // The record carries the idle TTL.
  const std::string ttl = redis.command("TTL talkserve:session:" + id);
  CHECK(std::stoi(ttl.substr(1)) > 590);
}

TEST_CASE("redis sessions: one turn at a time across replicas, and a dead replica's lock expires",
          "[pipeline][sessions][redis]") {
  RedisServer redis;
  ManualClock clock;
  Replica a(redis, clock, 1s), b(redis, clock, 1s);
  std::string why;
  Refusal refusal{};
  const auto id = a.store->begin_turn("", &why)->id;
  a.store->end_turn(id, turn("u1", "a1"));

  REQUIRE(a.store->begin_turn(id, &why));  // A's turn runs
  CHECK(b.store->begin_turn(id, &why, &refusal) == std::nullopt);
  CHECK(refusal == Refusal::busy);
  a.store->end_turn(id, turn("u2", "a2"));
  auto on_b = b.store->begin_turn(id, &why, &refusal);  // released: B may go now
  REQUIRE(on_b);
  CHECK(on_b->history.size() == 4);

  // B "dies" mid-turn (never ends it): A is refused until the lock's TTL (1 s, Redis's own
  // clock) passes, then continues from the last finished turn.
  CHECK(a.store->begin_turn(id, &why, &refusal) == std::nullopt);
  CHECK(refusal == Refusal::busy);
  std::this_thread::sleep_for(1200ms);
  auto after = a.store->begin_turn(id, &why, &refusal);
  REQUIRE(after);
  CHECK(after->history.size() == 4);
  // B's late unlock does not free A's lock.
  b.store->abort_turn(id);
  CHECK(redis.command("EXISTS talkserve:session:" + id + ":turn") == ":1");
  a.store->abort_turn(id);
  CHECK(redis.command("EXISTS talkserve:session:" + id + ":turn") == ":0");
}

TEST_CASE("redis sessions: Redis down, each replica carries on with its own sessions",
          "[pipeline][sessions][redis]") {
  RedisServer redis;
  ManualClock clock;
  Replica a(redis, clock), b(redis, clock);
  std::string why;
  Refusal refusal{};
  const auto id = a.store->begin_turn("", &why)->id;
  a.store->end_turn(id, turn("u1", "a1"));
  redis.kill();

  // A: local turns go on, nothing fails; the skipped calls and errors are counted.
  auto s = a.store->begin_turn(id, &why);
  REQUIRE(s);
  CHECK(s->history.size() == 2);
  a.store->end_turn(id, turn("u2", "a2"));
  const auto fresh = a.store->begin_turn("", &why);
  REQUIRE(fresh);
  a.store->abort_turn(fresh->id);
  CHECK(a.counter("talkserve_redis_errors_total", {{"op", "session_lock"}}) >= 1);
  CHECK(a.counter("talkserve_redis_session_skipped_total") >= 3);
  CHECK(a.metrics.gauge("talkserve_redis_up", "").value() == 0);
  // B never saw the session and cannot ask Redis: unknown there.
  CHECK(b.store->begin_turn(id, &why, &refusal) == std::nullopt);
  CHECK(refusal == Refusal::not_found);

  // Redis back (empty): after the back-off, A's next finished turn is shared again.
  redis.start();
  clock.advance(20s);
  REQUIRE(a.store->begin_turn(id, &why));
  a.store->end_turn(id, turn("u3", "a3"));
  CHECK(a.metrics.gauge("talkserve_redis_up", "").value() == 1);
  clock.advance(20s);
  auto on_b = b.store->begin_turn(id, &why);
  REQUIRE(on_b);
  CHECK(on_b->history.size() == 6);
  CHECK(on_b->version == 3);
}
