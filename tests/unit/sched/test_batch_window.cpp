#include <catch2/catch.hpp>
#include <chrono>

#include "talkserve/sched/batch_window.hpp"

using namespace std::chrono_literals;
using talkserve::sched::BatchWindow;
using talkserve::sched::Clock;

namespace {
const Clock::time_point t0{100s};
}

TEST_CASE("BatchWindow is quiet before it has seen a gap", "[sched][window]") {
  BatchWindow w(1ms, 10ms, 0.5, 8);
  CHECK(w.quiet());
  CHECK(w.window() == 1ms);
  w.on_arrival(t0);
  CHECK(w.quiet());
  CHECK_FALSE(w.ewma_gap().has_value());
  CHECK(w.window() == 1ms);
}

TEST_CASE("BatchWindow opens to the time a full batch takes to arrive", "[sched][window]") {
  BatchWindow w(0ms, 10ms, 0.5, 8);
  for (int i = 0; i < 5; ++i) w.on_arrival(t0 + i * 1ms);
  REQUIRE(w.ewma_gap() == 1ms);
  CHECK_FALSE(w.quiet());
  CHECK(w.window() == 7ms);  // 1ms * (8 - 1)
}

TEST_CASE("BatchWindow is clamped to [min_wait, max_wait]", "[sched][window]") {
  BatchWindow wide(0ms, 10ms, 0.5, 16);
  for (int i = 0; i < 3; ++i) wide.on_arrival(t0 + i * 1ms);
  CHECK(wide.window() == 10ms);  // 15ms clamped

  BatchWindow narrow(2ms, 10ms, 0.5, 8);
  for (int i = 0; i < 3; ++i) narrow.on_arrival(t0 + i * 100us);
  CHECK(narrow.window() == 2ms);  // 0.7ms raised to min_wait
}

TEST_CASE("BatchWindow blends gaps with alpha", "[sched][window]") {
  BatchWindow w(0ms, 10ms, 0.5, 8);
  w.on_arrival(t0);
  w.on_arrival(t0 + 1ms);  // first sample: 1ms
  w.on_arrival(t0 + 4ms);  // 0.5 * 3ms + 0.5 * 1ms
  CHECK(w.ewma_gap() == 2ms);
  BatchWindow slow(0ms, 10ms, 0.25, 8);
  slow.on_arrival(t0);
  slow.on_arrival(t0 + 4ms);  // 4ms
  slow.on_arrival(t0 + 4ms);  // 0.25 * 0 + 0.75 * 4ms
  CHECK(slow.ewma_gap() == 3ms);
}

TEST_CASE("BatchWindow treats a gap longer than max_wait as a quiet period", "[sched][window]") {
  BatchWindow w(0ms, 10ms, 0.5, 8);
  for (int i = 0; i < 10; ++i) w.on_arrival(t0 + i * 1ms);
  REQUIRE(w.window() == 7ms);
  const auto later = t0 + 9ms + 1s;
  w.on_arrival(later);  // restart at min(1s, 2 * max_wait)
  CHECK(w.ewma_gap() == 20ms);
  CHECK(w.quiet());
  CHECK(w.window() == 0ms);  // a lone request is not held back
  w.on_arrival(later);       // a second, simultaneous arrival: 0.5 * 0 + 0.5 * 20ms = max_wait
  CHECK(w.ewma_gap() == 10ms);
  CHECK_FALSE(w.quiet());
  CHECK(w.window() == 10ms);  // a burst is batched
}

TEST_CASE("BatchWindow with max_batch 1 never waits beyond min_wait", "[sched][window]") {
  BatchWindow w(3ms, 10ms, 0.5, 1);
  w.on_arrival(t0);
  w.on_arrival(t0 + 1ms);
  CHECK(w.window() == 3ms);
}
