// Exact tests of BatchingExecutor on a ManualClock with one worker.
//
// Synchronisation without sleeps: every executor wait goes through the clock, and the worker
// re-reads all state between wake-ups, so "ManualClock::waits_started() grew by one after my
// action" means the worker has fully reacted to it (batch run, callbacks invoked, parked).
// settle() wraps an action in that handshake.

#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "talkserve/sched/batching_executor.hpp"

using namespace std::chrono_literals;
using talkserve::sched::BatchingConfig;
using talkserve::sched::BatchingExecutor;
using talkserve::sched::BatchReport;
using talkserve::sched::Clock;
using talkserve::sched::EnqueueOptions;
using talkserve::sched::ExecErrc;
using talkserve::sched::Expected;
using talkserve::sched::ManualClock;
using talkserve::sched::RequestId;
using talkserve::sched::StopMode;

namespace {

using Executor = BatchingExecutor<int, int>;
const Clock::time_point t0{1000s};

// Records batches and outcomes; the model returns request * 10.
struct Harness {
  explicit Harness(const BatchingConfig& config) : clock(t0) {
    executor = std::make_unique<Executor>(
        config, clock, [this](std::vector<int>& batch) { return run(batch); },
        [this](const BatchReport& r) {
          std::lock_guard lock(m);
          reports.push_back(
              {r.batch_size, r.queue_depth,
               std::vector<Clock::duration>(r.queue_waits.begin(), r.queue_waits.end()), r.ok});
        });
    clock.wait_for_waits_started(1);  // the worker is parked, idle
  }

  std::vector<int> run(std::vector<int>& batch) {
    std::function<void(std::vector<int>&)> hook;
    {
      std::lock_guard lock(m);
      batches.push_back(batch);
      batch_times.push_back(clock.now());
      hook = on_batch;
    }
    if (hook) hook(batch);
    std::vector<int> out;
    for (int r : batch) out.push_back(r * 10);
    return out;
  }

  template <class F>
  void settle(F&& action) {
    const auto started = clock.waits_started();
    action();
    clock.wait_for_waits_started(started + 1);
  }

  Executor::Callback record(int request) {
    return [this, request](Expected<int> outcome) {
      {
        std::lock_guard lock(m);
        outcomes.emplace(request, std::move(outcome));
      }
      outcome_cv.notify_all();
    };
  }

  // For callbacks delivered by another thread than the worker's settle() handshake covers.
  void wait_outcome(int request) {
    std::unique_lock lock(m);
    outcome_cv.wait(lock, [&] { return outcomes.count(request) != 0; });
  }

  void set_hook(std::function<void(std::vector<int>&)> hook) {
    std::lock_guard lock(m);
    on_batch = std::move(hook);
  }

  RequestId add(int request, int priority = 1, std::optional<Clock::time_point> deadline = {}) {
    RequestId id = 0;
    settle([&] {
      auto r = executor->enqueue(request, record(request),
                                 EnqueueOptions{.priority = priority, .deadline = deadline});
      REQUIRE(r.has_value());
      id = *r;
    });
    return id;
  }

  void advance(Clock::duration d) {
    settle([&] { clock.advance(d); });
  }

  std::vector<std::vector<int>> batches_seen() {
    std::lock_guard lock(m);
    return batches;
  }
  std::optional<Expected<int>> outcome(int request) {
    std::lock_guard lock(m);
    auto it = outcomes.find(request);
    if (it == outcomes.end()) return std::nullopt;
    return it->second;
  }
  std::optional<ExecErrc> error_of(int request) {
    auto o = outcome(request);
    if (!o || o->has_value()) return std::nullopt;
    return o->error().code;
  }

  struct Report {
    std::size_t size;
    std::size_t depth;
    std::vector<Clock::duration> waits;
    bool ok;
  };

  ManualClock clock;
  std::mutex m;
  std::vector<std::vector<int>> batches;
  std::vector<Clock::time_point> batch_times;
  std::map<int, Expected<int>> outcomes;
  std::condition_variable outcome_cv;
  std::vector<Report> reports;
  std::function<void(std::vector<int>&)> on_batch;
  std::unique_ptr<Executor> executor;  // last: destroyed (stopped) first
};

BatchingConfig config(std::size_t max_batch, Clock::duration min_wait, Clock::duration max_wait) {
  BatchingConfig c;
  c.name = "test";
  c.max_batch = max_batch;
  c.max_queue = 64;
  c.min_wait = min_wait;
  c.max_wait = max_wait;
  c.ewma_alpha = 0.5;
  return c;
}

}  // namespace

TEST_CASE("batch order is priority first, FIFO within a priority", "[sched][executor]") {
  Harness h(config(8, 5ms, 10ms));
  h.add(1, 2);
  h.add(2, 1);
  h.add(3, 0);
  h.add(4, 1);
  h.add(5, 2);
  h.add(6, 0);
  CHECK(h.batches_seen().empty());  // window (min_wait 5ms) still open
  h.advance(5ms);
  REQUIRE(h.batches_seen() == std::vector<std::vector<int>>{{3, 6, 2, 4, 1, 5}});
  for (int r = 1; r <= 6; ++r) {
    auto o = h.outcome(r);
    REQUIRE(o);
    REQUIRE(o->has_value());
    CHECK(**o == r * 10);
  }
  auto s = h.executor->stats();
  CHECK(s.batches == 1);
  CHECK(s.batch_size_histogram[6] == 1);
  CHECK(s.completed == 6);
  CHECK(s.queue_depth == 0);
  CHECK(s.total_queue_wait == 6 * 5ms);
}

TEST_CASE("max_batch waiting requests dispatch at once, the rest wait", "[sched][executor]") {
  Harness h(config(3, 5ms, 10ms));
  h.add(1, 1);
  h.add(2, 1);
  CHECK(h.batches_seen().empty());
  h.add(3, 0);  // third request: full batch, no time passes
  REQUIRE(h.batches_seen() == std::vector<std::vector<int>>{{3, 1, 2}});
  CHECK(h.batch_times.at(0) == t0);
  h.add(4, 2);
  h.add(5, 1);
  CHECK(h.batches_seen().size() == 1);
  h.add(6, 0);  // full again: [6, 5, 4]
  REQUIRE(h.batches_seen().size() == 2);
  CHECK(h.batches_seen()[1] == std::vector<int>{6, 5, 4});
  h.add(7, 0);
  CHECK(h.executor->stats().queue_depth == 1);
  h.advance(5ms);
  REQUIRE(h.batches_seen().size() == 3);
  CHECK(h.batches_seen()[2] == std::vector<int>{7});
  CHECK(h.executor->stats().batch_size_histogram == std::vector<std::uint64_t>{0, 1, 0, 2});
}

TEST_CASE("max_batch_cost caps a batch's summed cost and closes the window when reached",
          "[sched][executor]") {
  auto c = config(8, 5ms, 10ms);
  c.max_batch_cost = 10;
  Harness h(c);
  auto add = [&](int request, double cost) {
    h.settle([&] {
      EnqueueOptions o;
      o.cost = cost;
      REQUIRE(h.executor->enqueue(request, h.record(request), o).has_value());
    });
  };
  add(1, 4);
  add(2, 4);
  CHECK(h.batches_seen().empty());  // 8 of 10 waiting: the window stays open
  add(3, 4);                        // 12 waiting: dispatch what fits in 10
  REQUIRE(h.batches_seen() == std::vector<std::vector<int>>{{1, 2}});
  CHECK(h.executor->stats().queue_depth == 1);
  add(4, 25);  // costlier than the cap: runs alone, after 3 (which no longer fits with it)
  REQUIRE(h.batches_seen() == std::vector<std::vector<int>>{{1, 2}, {3}, {4}});
  add(5, 1);
  add(6, 1);
  h.advance(10ms);  // cheap requests batch by the window as before
  REQUIRE(h.batches_seen().size() == 4);
  CHECK(h.batches_seen()[3] == std::vector<int>{5, 6});
  REQUIRE(h.outcome(4));
  CHECK(h.outcome(4)->value() == 40);
}

TEST_CASE("max_batch_cost must not be negative", "[sched][config]") {
  auto c = config(8, 5ms, 10ms);
  c.max_batch_cost = -1;
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("max_batch_cost"));
}

TEST_CASE("the window closes exactly at oldest arrival + window", "[sched][executor]") {
  Harness h(config(8, 4ms, 10ms));
  h.add(1);  // quiet: window = min_wait = 4ms, from t0
  h.advance(1ms);
  h.add(2);  // gap 1ms -> window = clamp(7ms, 4, 10) = 7ms, still from t0
  h.advance(7ms - 1ms - 1ns);
  CHECK(h.batches_seen().empty());
  h.advance(1ns);
  REQUIRE(h.batches_seen() == std::vector<std::vector<int>>{{1, 2}});
  CHECK(h.batch_times.at(0) == t0 + 7ms);
  REQUIRE(h.reports.size() == 1);
  CHECK(h.reports[0].waits == std::vector<Clock::duration>{7ms, 6ms});
}

TEST_CASE("a lone request after a quiet period is not held back", "[sched][executor]") {
  Harness h(config(8, 0ms, 10ms));
  h.add(1);  // first request ever: dispatched at once
  REQUIRE(h.batches_seen().size() == 1);
  CHECK(h.batch_times.at(0) == t0);
  // A steady stream at 1ms opens the window...
  for (int i = 2; i <= 4; ++i) {
    h.advance(1ms);
    h.add(i);
  }
  h.advance(10ms);
  REQUIRE(h.batches_seen().size() == 2);
  // ...then a quiet second: the next request goes immediately.
  h.advance(1s);
  const auto at = h.clock.now();
  h.add(5);
  REQUIRE(h.batches_seen().size() == 3);
  CHECK(h.batches_seen()[2] == std::vector<int>{5});
  CHECK(h.batch_times.at(2) == at);
}

TEST_CASE("a burst is batched by the adaptive window", "[sched][executor]") {
  Harness h(config(8, 0ms, 10ms));
  h.add(1);  // lone: runs at t0
  REQUIRE(h.batches_seen().size() == 1);
  h.advance(1ms);
  h.add(2);  // gap 1ms: ewma 1ms, window 7ms from t0 + 1ms
  h.advance(1ms);
  h.add(3);
  h.advance(1ms);
  h.add(4);
  CHECK(h.batches_seen().size() == 1);
  h.advance(5ms - 1ns);  // t0 + 8ms - 1ns
  CHECK(h.batches_seen().size() == 1);
  h.advance(1ns);
  REQUIRE(h.batches_seen().size() == 2);
  CHECK(h.batches_seen()[1] == std::vector<int>{2, 3, 4});
  CHECK(h.batch_times.at(1) == t0 + 8ms);
  CHECK(h.reports.at(1).waits == std::vector<Clock::duration>{7ms, 6ms, 5ms});
}

TEST_CASE("a cancelled request is never run and gets `cancelled`", "[sched][executor]") {
  Harness h(config(8, 5ms, 10ms));
  const RequestId a = h.add(1);
  const RequestId b = h.add(2);
  h.add(3);
  bool cancelled = false;
  h.settle([&] { cancelled = h.executor->cancel(b); });
  CHECK(cancelled);
  CHECK(h.error_of(2) == ExecErrc::cancelled);  // delivered before cancel() returned
  CHECK_FALSE(h.executor->cancel(b));           // second cancel: unknown
  CHECK_FALSE(h.executor->cancel(9999));
  h.advance(5ms);
  REQUIRE(h.batches_seen() == std::vector<std::vector<int>>{{1, 3}});
  CHECK_FALSE(h.executor->cancel(a));  // already ran
  auto s = h.executor->stats();
  CHECK(s.cancelled == 1);
  CHECK(s.completed == 2);
}

TEST_CASE("cancelling the oldest request moves the window", "[sched][executor]") {
  Harness h(config(8, 5ms, 10ms));
  const RequestId a = h.add(1);  // due t0 + 5ms
  h.advance(2ms);
  h.add(2);  // ewma 2ms: window = clamp(14ms) = 10ms
  h.settle([&] { h.executor->cancel(a); });
  h.advance(10ms - 2ms - 1ns);  // t0 + 10ms - 1ns: request 2 is now the oldest (t0 + 2ms)
  CHECK(h.batches_seen().empty());
  h.advance(2ms);  // t0 + 12ms - 1ns
  CHECK(h.batches_seen().empty());
  h.advance(1ns);
  CHECK(h.batches_seen() == std::vector<std::vector<int>>{{2}});
}

TEST_CASE("a request whose deadline passes while queued expires, unrun", "[sched][executor]") {
  Harness h(config(8, 5ms, 10ms));
  h.add(1, 1, t0 + 3ms);
  h.add(2, 1);
  h.add(3, 1, t0 + 10ms);
  h.advance(3ms);  // the worker wakes at the deadline, before the window
  CHECK(h.error_of(1) == ExecErrc::deadline_exceeded);
  CHECK(h.batches_seen().empty());
  h.advance(2ms);
  REQUIRE(h.batches_seen() == std::vector<std::vector<int>>{{2, 3}});
  REQUIRE(h.outcome(3));
  CHECK(h.outcome(3)->has_value());

  h.add(4, 0, h.clock.now());  // deadline already reached: expires without running
  CHECK(h.error_of(4) == ExecErrc::deadline_exceeded);
  CHECK(h.batches_seen().size() == 1);
  auto s = h.executor->stats();
  CHECK(s.expired == 2);
  CHECK(s.completed == 2);
}

TEST_CASE("enqueue returns queue_full at once when the bounded queue is full",
          "[sched][executor]") {
  BatchingConfig c = config(8, 5ms, 10ms);
  c.max_queue = 3;
  Harness h(c);
  h.add(1);
  h.add(2);
  h.add(3);
  bool callback_called = false;
  auto r = h.executor->enqueue(4, [&](Expected<int>) { callback_called = true; });
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == ExecErrc::queue_full);
  CHECK_THAT(r.error().message, Catch::Contains("test"));
  CHECK(h.executor->stats().rejected == 1);
  h.advance(5ms);
  REQUIRE(h.batches_seen() == std::vector<std::vector<int>>{{1, 2, 3}});
  h.add(5);  // room again
  CHECK_FALSE(callback_called);
  CHECK(h.executor->stats().accepted == 4);
}

TEST_CASE("max_queue_delay sheds new work while queued work has waited too long",
          "[sched][executor]") {
  BatchingConfig c = config(1, 0ms, 0ms);
  c.max_queue_delay = 100ms;
  Harness h(c);
  // The model is busy with request 1 until released, so what comes next waits in the queue.
  std::promise<void> started, release;
  auto released = release.get_future().share();
  h.set_hook([&, released](std::vector<int>& batch) {
    if (batch.front() == 1) {
      started.set_value();
      released.wait();
    }
  });
  REQUIRE(h.executor->enqueue(1, h.record(1)).has_value());
  started.get_future().wait();
  REQUIRE(h.executor->enqueue(2, h.record(2)).has_value());
  h.clock.advance(60ms);
  CHECK(h.executor->queue_delay(1) == 60ms);
  CHECK_FALSE(h.executor->overloaded(1));
  REQUIRE(h.executor->enqueue(3, h.record(3)).has_value());  // the oldest waited 60 ms
  h.clock.advance(40ms);
  CHECK(h.executor->queue_delay(1) == 100ms);
  CHECK(h.executor->overloaded(1));

  bool callback_called = false;
  auto refused = h.executor->enqueue(4, [&](Expected<int>) { callback_called = true; },
                                     EnqueueOptions{.priority = 1, .deadline = {}});
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().code == ExecErrc::overloaded);
  CHECK_THAT(refused.error().message, Catch::Contains("100 ms"));
  // A lower tier would queue behind the same backlog: shed too.
  auto low = h.executor->enqueue(5, {}, EnqueueOptions{.priority = 2, .deadline = {}});
  REQUIRE_FALSE(low.has_value());
  CHECK(low.error().code == ExecErrc::overloaded);
  // A higher tier jumps the backlog: nothing of its own has waited, so it is accepted.
  CHECK(h.executor->queue_delay(0) == Clock::duration::zero());
  REQUIRE(h.executor->enqueue(6, h.record(6), EnqueueOptions{.priority = 0, .deadline = {}}).has_value());

  auto s = h.executor->stats();
  CHECK(s.shed == 2);
  CHECK(s.rejected == 0);
  CHECK(s.accepted == 4);

  release.set_value();
  for (int r : {1, 2, 3, 6}) h.wait_outcome(r);
  CHECK(h.batches_seen() == std::vector<std::vector<int>>{{1}, {6}, {2}, {3}});
  CHECK(h.executor->queue_delay(1) == Clock::duration::zero());
  REQUIRE(h.executor->enqueue(7, h.record(7)).has_value());  // the backlog is gone
  h.wait_outcome(7);
  CHECK_FALSE(callback_called);
}

TEST_CASE("max_queue_delay 0 never sheds", "[sched][executor]") {
  Harness h(config(8, 1s, 1s));  // requests wait for the 1 s batch window
  h.add(1);
  h.advance(999ms);
  CHECK(h.executor->queue_delay(1) == 999ms);
  CHECK_FALSE(h.executor->overloaded(1));
  h.add(2);
  CHECK(h.executor->stats().shed == 0);
}

TEST_CASE("an exception in the batch function fails that batch only", "[sched][executor]") {
  Harness h(config(2, 5ms, 10ms));
  h.set_hook([](std::vector<int>& batch) {
    if (batch.front() == 13) throw std::runtime_error("model exploded");
  });
  h.add(13);
  h.add(14);  // full batch: runs and throws
  REQUIRE(h.error_of(13) == ExecErrc::failed);
  REQUIRE(h.error_of(14) == ExecErrc::failed);
  CHECK(h.outcome(13)->error().message == "model exploded");
  h.set_hook([](std::vector<int>&) { throw 42; });  // not a std::exception
  h.add(20);
  h.add(21);
  CHECK(h.error_of(20) == ExecErrc::failed);
  h.set_hook(nullptr);
  h.add(15);
  h.add(16);
  REQUIRE(h.outcome(16));
  CHECK(**h.outcome(16) == 160);
  auto s = h.executor->stats();
  CHECK(s.failed == 4);
  CHECK(s.completed == 2);
  REQUIRE(h.reports.size() == 3);
  CHECK_FALSE(h.reports[0].ok);
  CHECK(h.reports[2].ok);
}

TEST_CASE("a wrong number of results fails the batch", "[sched][executor]") {
  ManualClock clock(t0);
  std::vector<Expected<std::string>> got;
  std::mutex m;
  BatchingExecutor<int, std::string> ex(
      config(2, 0ms, 10ms), clock, [](std::vector<int>&) { return std::vector<std::string>{}; });
  clock.wait_for_waits_started(1);
  auto cb = [&](Expected<std::string> e) {
    std::lock_guard lock(m);
    got.push_back(std::move(e));
  };
  ex.enqueue(1, cb);
  ex.enqueue(2, cb);
  ex.stop(StopMode::drain);
  REQUIRE(got.size() == 2);
  CHECK(got[0].error().code == ExecErrc::failed);
  CHECK_THAT(got[1].error().message, Catch::Contains("returned 0 results for"));
}

TEST_CASE("a throwing callback is contained and counted", "[sched][executor]") {
  Harness h(config(1, 0ms, 10ms));
  h.settle([&] {
    h.executor->enqueue(1, [](Expected<int>) { throw std::runtime_error("bad callback"); });
  });
  h.add(2);  // the worker survived
  REQUIRE(h.outcome(2));
  CHECK(h.executor->stats().callback_exceptions == 1);
}

TEST_CASE("stop(fail) fails queued work with `stopped` and refuses new work", "[sched][executor]") {
  Harness h(config(8, 5ms, 10ms));
  h.add(1);
  h.add(2);
  h.executor->stop(StopMode::fail);
  CHECK(h.error_of(1) == ExecErrc::stopped);
  CHECK(h.error_of(2) == ExecErrc::stopped);
  CHECK(h.batches_seen().empty());
  auto r = h.executor->enqueue(3, h.record(3));
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ExecErrc::stopped);
  CHECK_FALSE(h.outcome(3));
  CHECK(h.executor->stats().stopped == 2);
  h.executor->stop();  // idempotent
}

TEST_CASE("stop(drain) runs queued work without waiting for the window", "[sched][executor]") {
  Harness h(config(3, 5ms, 10ms));
  h.add(1, 2);
  h.add(2, 0);
  h.add(3, 1);  // full batch [2, 3, 1] runs
  h.add(4, 1);
  h.add(5, 0);  // these two wait for the window
  REQUIRE(h.batches_seen().size() == 1);
  h.executor->stop(StopMode::drain);  // no clock advance needed
  CHECK(h.batches_seen() == std::vector<std::vector<int>>{{2, 3, 1}, {5, 4}});
  CHECK(h.clock.now() == t0);
  for (int r = 1; r <= 5; ++r) CHECK(h.outcome(r)->has_value());
}

TEST_CASE("stop(fail) lets the running batch finish", "[sched][executor]") {
  Harness h(config(1, 0ms, 10ms));
  std::mutex gate_m;
  std::condition_variable gate_cv;
  bool entered = false;
  bool release = false;
  h.set_hook([&](std::vector<int>&) {
    std::unique_lock lock(gate_m);
    entered = true;
    gate_cv.notify_all();
    gate_cv.wait(lock, [&] { return release; });
  });
  REQUIRE(h.executor->enqueue(1, h.record(1)));
  {
    std::unique_lock lock(gate_m);
    gate_cv.wait(lock, [&] { return entered; });
  }
  REQUIRE(h.executor->enqueue(2, h.record(2)));  // queued behind the running batch
  CHECK_FALSE(h.executor->cancel(1));            // running: cannot be cancelled
  CHECK(h.executor->stats().in_flight == 1);
  std::thread stopper([&] { h.executor->stop(StopMode::fail); });
  // The queued request is failed before stop() joins, while request 1 still runs.
  h.wait_outcome(2);
  CHECK_FALSE(h.outcome(1));
  {
    std::lock_guard lock(gate_m);
    release = true;
  }
  gate_cv.notify_all();
  stopper.join();
  CHECK(h.error_of(2) == ExecErrc::stopped);
  REQUIRE(h.outcome(1));
  CHECK(**h.outcome(1) == 10);
  CHECK(h.batches_seen() == std::vector<std::vector<int>>{{1}});
}

TEST_CASE("the destructor stops and fails queued work", "[sched][executor]") {
  std::optional<Expected<int>> got;
  {
    ManualClock clock(t0);
    Executor ex(config(8, 5ms, 10ms), clock, [](std::vector<int>& b) { return b; });
    ex.enqueue(7, [&](Expected<int> e) { got = std::move(e); });
  }
  REQUIRE(got);
  CHECK(got->error().code == ExecErrc::stopped);
}

TEST_CASE("requests may carry move-only payloads", "[sched][executor]") {
  ManualClock clock(t0);
  std::vector<int> seen;
  BatchingExecutor<std::unique_ptr<int>, std::unique_ptr<int>> ex(
      config(4, 0ms, 10ms), clock, [](std::vector<std::unique_ptr<int>>& batch) {
        std::vector<std::unique_ptr<int>> out;
        for (auto& p : batch) out.push_back(std::make_unique<int>(*p + 1));
        return out;
      });
  ex.enqueue(std::make_unique<int>(41),
             [&](Expected<std::unique_ptr<int>> e) { seen.push_back(**e); });
  ex.stop(StopMode::drain);
  CHECK(seen == std::vector<int>{42});
}

TEST_CASE("stop() from a worker-side callback is refused, not a deadlock", "[sched][executor]") {
  Harness h(config(1, 0ms, 10ms));
  h.settle([&] { h.executor->enqueue(1, [&](Expected<int>) { h.executor->stop(); }); });
  CHECK(h.executor->stats().callback_exceptions == 1);
  h.add(2);  // still running
  CHECK(h.outcome(2));
}
