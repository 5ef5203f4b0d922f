// QueueDelayProbe on a ManualClock with a hand-run "pool": a vector of posted tasks.

#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include "talkserve/sched/queue_delay_probe.hpp"

using namespace std::chrono_literals;
using talkserve::sched::Clock;
using talkserve::sched::ManualClock;
using talkserve::sched::QueueDelayProbe;

namespace {

struct FakePool {
  std::vector<std::function<void()>> tasks;
  QueueDelayProbe::Post post() {
    return [this](std::function<void()> f) { tasks.push_back(std::move(f)); };
  }
  void run_all() {
    auto now = std::move(tasks);
    tasks.clear();
    for (auto& f : now) f();
  }
};

}  // namespace

TEST_CASE("QueueDelayProbe follows the wait of one probe at a time", "[sched][probe]") {
  ManualClock clock(Clock::time_point{1000s});
  FakePool pool;
  QueueDelayProbe probe(clock, pool.post(), 100ms);

  CHECK(probe.delay() == 0ms);  // nothing out yet: a probe goes out
  REQUIRE(pool.tasks.size() == 1);
  clock.advance(30ms);
  CHECK(probe.delay() == 30ms);  // the probe is still queued: its age so far
  CHECK(pool.tasks.size() == 1);  // no second probe while one is out
  CHECK_FALSE(probe.overloaded());
  clock.advance(70ms);
  CHECK(probe.overloaded());  // the backlog has held the probe 100 ms
  CHECK(pool.tasks.size() == 1);

  pool.run_all();  // the pool reaches the probe
  clock.advance(5ms);
  CHECK_FALSE(probe.overloaded());  // a drained pool admits; a fresh probe goes out
  REQUIRE(pool.tasks.size() == 1);
  clock.advance(150ms);
  CHECK(probe.overloaded());  // the fresh probe is stuck too: the pool is busy again
  pool.run_all();
  CHECK(probe.delay() == 0ms);
}

TEST_CASE("QueueDelayProbe with max_delay 0 never reports overload", "[sched][probe]") {
  ManualClock clock(Clock::time_point{1000s});
  FakePool pool;
  QueueDelayProbe probe(clock, pool.post(), 0ms);
  CHECK(probe.delay() == 0ms);
  clock.advance(10s);
  CHECK(probe.delay() == 10s);
  CHECK_FALSE(probe.overloaded());
}

TEST_CASE("a probe that runs after its QueueDelayProbe is gone is harmless", "[sched][probe]") {
  ManualClock clock(Clock::time_point{1000s});
  FakePool pool;
  {
    QueueDelayProbe probe(clock, pool.post(), 1s);
    probe.delay();
  }
  REQUIRE(pool.tasks.size() == 1);
  pool.run_all();
  SUCCEED("the queued probe ran against its own shared state");
}

TEST_CASE("a pool that refuses the probe is measured again next time", "[sched][probe]") {
  ManualClock clock(Clock::time_point{1000s});
  int refused = 0;
  QueueDelayProbe probe(
      clock, [&](std::function<void()>) { ++refused; throw std::runtime_error("stopped"); }, 1s);
  CHECK(probe.delay() == 0ms);
  clock.advance(5s);
  CHECK(probe.delay() == 0ms);  // not stuck at the age of a probe that never went out
  CHECK(refused == 2);
}
