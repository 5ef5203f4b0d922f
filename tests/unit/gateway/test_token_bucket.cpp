#include <catch2/catch.hpp>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include "talkserve/gateway/token_bucket.hpp"
#include "talkserve/sched/clock.hpp"

using namespace talkserve;
using namespace std::chrono_literals;
using gateway::TokenBucket;

TEST_CASE("token bucket: burst, then exact refill", "[gateway][bucket]") {
  sched::ManualClock clock;
  TokenBucket b(2.0, 3.0);  // one token every 500 ms, three at once
  CHECK(b.available(clock.now()) == 3);
  for (int i = 0; i < 3; ++i) CHECK_FALSE(b.try_take(clock.now()));
  auto wait = b.try_take(clock.now());
  REQUIRE(wait);
  CHECK(*wait == 500ms);
  CHECK(b.available(clock.now()) == 0);

  clock.advance(499ms);
  wait = b.try_take(clock.now());
  REQUIRE(wait);
  CHECK(*wait == 1ms);  // a rejected attempt does not push the schedule back
  clock.advance(1ms);
  CHECK_FALSE(b.try_take(clock.now()));
  CHECK(b.try_take(clock.now()));

  // After a long idle period the bucket is full again, never more than burst.
  clock.advance(10s);
  CHECK(b.available(clock.now()) == 3);
  for (int i = 0; i < 3; ++i) CHECK_FALSE(b.try_take(clock.now()));
  CHECK(b.try_take(clock.now()));
}

TEST_CASE("token bucket: sustained rate equals the configured rate", "[gateway][bucket]") {
  sched::ManualClock clock;
  TokenBucket b(10.0, 1.0);
  int taken = 0;
  for (int ms = 0; ms < 10'000; ++ms) {  // 10 s in 1 ms steps, trying every step
    if (!b.try_take(clock.now())) ++taken;
    clock.advance(1ms);
  }
  CHECK(taken == 100);
}

TEST_CASE("token bucket: fractional rates and bursts", "[gateway][bucket]") {
  sched::ManualClock clock;
  TokenBucket b(0.5, 1.5);  // one token per 2 s; capacity 1.5
  CHECK_FALSE(b.try_take(clock.now()));
  auto wait = b.try_take(clock.now());
  REQUIRE(wait);
  CHECK(*wait == 1s);  // half a token is already there
  clock.advance(1s);
  CHECK_FALSE(b.try_take(clock.now()));
}

TEST_CASE("token bucket: invalid parameters", "[gateway][bucket]") {
  CHECK_THROWS_AS(TokenBucket(0, 1), std::invalid_argument);
  CHECK_THROWS_AS(TokenBucket(-1, 1), std::invalid_argument);
  CHECK_THROWS_AS(TokenBucket(1, 0.5), std::invalid_argument);
  CHECK_THROWS_AS(TokenBucket(1.0 / 0.0, 1), std::invalid_argument);
}

TEST_CASE("token bucket: concurrent takers never exceed the burst", "[gateway][bucket]") {
  sched::ManualClock clock;
  TokenBucket b(1.0, 1000.0);
  std::atomic<int> taken{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i)
        if (!b.try_take(clock.now())) taken.fetch_add(1);
    });
  for (auto& th : threads) th.join();
  CHECK(taken.load() == 1000);
}
