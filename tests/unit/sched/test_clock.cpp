#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "talkserve/sched/clock.hpp"

using namespace std::chrono_literals;
using talkserve::sched::Clock;
using talkserve::sched::ManualClock;
using talkserve::sched::SteadyClock;

TEST_CASE("SteadyClock is monotonic and waits until its deadline", "[sched][clock]") {
  SteadyClock clock;
  std::mutex m;
  std::condition_variable cv;
  const auto start = clock.now();
  {
    std::unique_lock lock(m);
    CHECK_FALSE(clock.wait_until(lock, cv, start - 1ms));  // already passed: no wait
    const auto deadline = clock.now() + 20ms;
    bool timed_out = false;
    while (!timed_out) timed_out = !clock.wait_until(lock, cv, deadline);
    CHECK(clock.now() >= deadline);
    CHECK(lock.owns_lock());
  }
  CHECK(clock.now() >= start);
}

TEST_CASE("SteadyClock wait_until returns true when notified", "[sched][clock]") {
  SteadyClock& clock = static_cast<SteadyClock&>(talkserve::sched::steady_clock());
  std::mutex m;
  std::condition_variable cv;
  bool flag = false;
  bool untimed_ok = true;  // an untimed wait never reports a timeout
  std::thread waiter([&] {
    std::unique_lock lock(m);
    while (!flag) untimed_ok = clock.wait_until(lock, cv, Clock::time_point::max()) && untimed_ok;
  });
  {
    std::lock_guard lock(m);
    flag = true;
  }
  cv.notify_all();
  waiter.join();  // a lost notify would hang here
  CHECK(untimed_ok);
}

TEST_CASE("ManualClock moves only by hand", "[sched][clock]") {
  const Clock::time_point t0{5s};
  ManualClock clock(t0);
  CHECK(clock.now() == t0);
  clock.advance(3ms);
  CHECK(clock.now() == t0 + 3ms);
  clock.set(t0 + 1s);
  CHECK(clock.now() == t0 + 1s);
  clock.set(t0 + 1s);  // setting the same time is allowed
  CHECK_THROWS_AS(clock.set(t0), std::invalid_argument);
  CHECK_THROWS_AS(clock.advance(-1ns), std::invalid_argument);
  CHECK(clock.now() == t0 + 1s);
}

TEST_CASE("ManualClock wait_until returns at once when the deadline has passed", "[sched][clock]") {
  ManualClock clock(Clock::time_point{1s});
  std::mutex m;
  std::condition_variable cv;
  std::unique_lock lock(m);
  CHECK_FALSE(clock.wait_until(lock, cv, Clock::time_point{1s}));
  CHECK_FALSE(clock.wait_until(lock, cv, Clock::time_point{0s}));
  CHECK(clock.waits_started() == 0);
  CHECK(lock.owns_lock());
}

namespace {

// A thread that waits on `clock` until `deadline` or until `stop` is set, counting its
// wake-ups, as an executor worker would.
struct DeadlineWaiter {
  ManualClock& clock;
  Clock::time_point deadline;
  std::mutex m;
  std::condition_variable cv;
  bool stop = false;
  bool timed_out = false;
  std::atomic<bool> finished{false};
  std::thread thread;

  DeadlineWaiter(ManualClock& c, Clock::time_point d) : clock(c), deadline(d) {
    thread = std::thread([this] {
      std::unique_lock lock(m);
      while (!stop) {
        if (!clock.wait_until(lock, cv, deadline)) {
          timed_out = true;
          break;
        }
      }
      finished = true;
    });
  }
  ~DeadlineWaiter() {
    if (!thread.joinable()) return;
    {
      std::lock_guard lock(m);
      stop = true;
    }
    cv.notify_all();
    thread.join();
  }
};

}  // namespace

TEST_CASE("ManualClock wakes a waiter only when its deadline is reached", "[sched][clock]") {
  ManualClock clock;
  DeadlineWaiter w(clock, Clock::time_point{} + 10ms);
  clock.wait_for_waits_started(1);
  CHECK(clock.waiters() == 1);

  clock.advance(9ms);
  // The time move woke it; it re-checked, found 9ms < 10ms and waits again.
  clock.wait_for_waits_started(2);
  CHECK_FALSE(w.finished);

  clock.advance(1ms);
  w.thread.join();
  CHECK(w.timed_out);
  CHECK(clock.waiters() == 0);
}

TEST_CASE("ManualClock wait_until returns true when the cv is notified", "[sched][clock]") {
  ManualClock clock;
  {
    DeadlineWaiter w(clock, Clock::time_point::max());
    clock.wait_for_waiters(1);
  }  // destructor sets stop and notifies
  CHECK(clock.waiters() == 0);
  CHECK(clock.waits_started() == 1);
}

TEST_CASE("ManualClock set() wakes every waiter", "[sched][clock]") {
  ManualClock clock;
  DeadlineWaiter a(clock, Clock::time_point{} + 5ms);
  DeadlineWaiter b(clock, Clock::time_point{} + 50ms);
  clock.wait_for_waiters(2);
  clock.set(Clock::time_point{} + 20ms);
  a.thread.join();
  CHECK(a.timed_out);
  clock.wait_for_waits_started(3);  // b woke and is waiting again (a timed out)
  CHECK_FALSE(b.finished);
  CHECK(clock.waiters() == 1);
}

TEST_CASE("ManualClock never loses a wake-up when time moves during registration",
          "[sched][clock]") {
  // The test thread advances without waiting for the waiter to block, so the advance lands at
  // any point of the waiter's check-then-wait; a lost wake-up would hang this test.
  constexpr int kSteps = 2000;
  ManualClock clock;
  std::mutex m;
  std::condition_variable cv;
  std::mutex ack_m;
  std::condition_variable ack_cv;
  int reached = 0;
  std::thread waiter([&] {
    for (int k = 1; k <= kSteps; ++k) {
      {
        std::unique_lock lock(m);
        while (clock.wait_until(lock, cv, Clock::time_point{} + k * 1ms)) {
        }
      }
      {
        std::lock_guard lock(ack_m);
        reached = k;
      }
      ack_cv.notify_all();
    }
  });
  for (int k = 1; k <= kSteps; ++k) {
    clock.advance(1ms);
    std::unique_lock lock(ack_m);
    ack_cv.wait(lock, [&] { return reached >= k; });
  }
  waiter.join();
  CHECK(reached == kSteps);
  CHECK(clock.waiters() == 0);
}

TEST_CASE("ManualClock survives waiters that return while an advance is notifying",
          "[sched][clock]") {
  // Many short-lived waiters (each with its own stack mutex and cv) against a thread that
  // advances continuously: exercises the pin path that keeps a record alive until notified.
  ManualClock clock;
  std::atomic<bool> done{false};
  std::thread advancer([&] {
    while (!done) clock.advance(1us);
  });
  std::thread waiters([&] {
    for (int i = 0; i < 5000; ++i) {
      std::mutex m;
      std::condition_variable cv;
      std::unique_lock lock(m);
      const auto deadline = clock.now() + 1us;
      while (clock.wait_until(lock, cv, deadline)) {
      }
    }
  });
  waiters.join();
  done = true;
  advancer.join();
  CHECK(clock.waiters() == 0);
}
