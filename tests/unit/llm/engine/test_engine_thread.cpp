#include <catch2/catch.hpp>

#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "engine_test_support.hpp"
#include "fake_model_runner.hpp"
#include "talkserve/llm/engine.hpp"
#include "talkserve/sched/clock.hpp"

using namespace talkserve;
using namespace talkserve::llm;
using namespace talkserve::llm::testing;
using namespace std::chrono_literals;

namespace {
EngineConfig small_config() {
  EngineConfig c;
  c.scheduler = {16, 64, 16};
  return c;
}
}  // namespace

TEST_CASE("engine thread: concurrent submits from several threads all complete correctly",
          "[llm][engine][thread]") {
  FakeModelRunner runner({.vocab = 64, .max_seq_len = 128, .block_size = 4, .num_blocks = 64});
  Engine engine(runner, small_config(), sched::steady_clock());
  engine.start();
  EventLog log;
  std::mutex ids_mutex;
  std::map<RequestId, std::vector<int32_t>> prompts;
  std::atomic<int> rejected{0};  // Catch assertions are not thread-safe: checked after join
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 8; ++i) {
        auto prompt = make_prompt(4 + i, t * 8 + i, 64);
        auto r = engine.submit(greedy_request(prompt, 10, log, i % 3));
        if (!r) {
          ++rejected;
          continue;
        }
        std::lock_guard lock(ids_mutex);
        prompts[r.id] = prompt;
      }
    });
  }
  for (auto& th : threads) th.join();
  REQUIRE(rejected == 0);
  REQUIRE(log.wait_finished(32));
  CHECK(prompts.size() == 32);  // unique ids
  for (const auto& [id, prompt] : prompts) {
    const auto s = log.get(id);
    REQUIRE(s.finished);
    CHECK(s.tokens == reference_greedy(prompt, 10, 64));
  }
  engine.stop();
  CHECK(runner.violations.empty());
  const auto st = engine.stats();
  CHECK(st.generation_tokens_total == 320);
  CHECK(st.num_running == 0);
  CHECK(st.num_free_blocks == 64);
}

TEST_CASE("engine thread: cancel from a callback lands at the next step",
          "[llm][engine][thread]") {
  FakeModelRunner runner({});
  Engine engine(runner, small_config(), sched::steady_clock());
  engine.start();
  EventLog log;
  auto r = greedy_request(make_prompt(6, 1, 64), 100, log);
  auto inner = r.on_event;
  RequestId id = 0;
  std::atomic<bool> cancelled{false};
  std::mutex id_mutex;
  std::condition_variable id_cv;
  bool id_known = false;
  r.on_event = [&](GenerationEvent&& ev) {
    {
      std::unique_lock lock(id_mutex);
      id_cv.wait(lock, [&] { return id_known; });  // submit() has returned
    }
    if (std::holds_alternative<TokenEvent>(ev) && !cancelled.exchange(true)) engine.cancel(id);
    inner(std::move(ev));
  };
  auto res = engine.submit(std::move(r));
  REQUIRE(res);
  {
    std::lock_guard lock(id_mutex);
    id = res.id;
    id_known = true;
  }
  id_cv.notify_all();
  REQUIRE(log.wait_finished(1));
  const auto s = log.get(res.id);
  CHECK(s.finished->reason == FinishReason::cancelled);
  CHECK(s.finished->usage.completion_tokens == 1);
  engine.stop();
  CHECK(engine.stats().num_free_blocks == runner.num_blocks());
}

TEST_CASE("engine thread: stop finishes queued requests and rejects new ones",
          "[llm][engine][thread]") {
  FakeModelRunner runner({});
  EventLog log;
  {
    Engine engine(runner, small_config(), sched::steady_clock());
    auto a = engine.submit(greedy_request(make_prompt(6, 1, 64), 5, log));
    auto b = engine.submit(greedy_request(make_prompt(6, 2, 64), 5, log));
    REQUIRE(a);
    REQUIRE(b);
    CHECK(a.id != b.id);
    engine.stop();  // never started
    REQUIRE(log.wait_finished(2));
    CHECK(log.get(a.id).finished->reason == FinishReason::cancelled);
    CHECK(log.get(a.id).finished->message == "engine stopped");
    auto late = engine.submit(greedy_request(make_prompt(6, 3, 64), 5, log));
    CHECK_FALSE(late);
    CHECK_THAT(late.error, Catch::Contains("stopped"));
    engine.stop();  // idempotent
  }
  Engine engine(runner, small_config(), sched::steady_clock());
  auto bad = engine.submit(greedy_request(make_prompt(300, 1, 64), 5, log));
  CHECK_FALSE(bad);
  CHECK_THAT(bad.error, Catch::Contains("context length"));
  engine.start();
  engine.stop();  // from idle: the condition variable wakes it
}

TEST_CASE("engine thread: queue_delay is the wait of the oldest unscheduled request per tier",
          "[llm][engine][thread]") {
  // A holds the only sequence slot; its callback parks the engine thread on each token until
  // the test lets it go, so the test knows exactly which step's snapshot is published.
  struct Gate {
    std::mutex m;
    std::condition_variable cv;
    int tokens = 0;   // tokens A has produced
    int allowed = 0;  // tokens the engine may go past
  } gate;
  FakeModelRunner runner({});
  sched::ManualClock clock;
  EngineConfig cfg;
  cfg.scheduler = {1, 64, 16};  // max_num_seqs = 1
  Engine engine(runner, cfg, clock);
  engine.start();
  EventLog log;
  auto a_request = greedy_request(make_prompt(6, 1, 64), 4, log);
  a_request.on_event = [&, inner = log.callback()](GenerationEvent&& ev) {
    const bool token = std::holds_alternative<TokenEvent>(ev);
    inner(std::move(ev));
    if (!token) return;
    std::unique_lock lock(gate.m);
    ++gate.tokens;
    gate.cv.notify_all();
    gate.cv.wait(lock, [&] { return gate.allowed >= gate.tokens; });
  };
  auto wait_tokens = [&](int n) {
    std::unique_lock lock(gate.m);
    return gate.cv.wait_for(lock, 10s, [&] { return gate.tokens >= n; });
  };
  auto allow = [&](int n) {
    std::lock_guard lock(gate.m);
    gate.allowed = n;
    gate.cv.notify_all();
  };

  REQUIRE(engine.submit(std::move(a_request)));
  REQUIRE(wait_tokens(1));  // A runs; nothing waits
  CHECK(engine.queue_delay(2) == 0ms);
  auto b = engine.submit(greedy_request(make_prompt(6, 2, 64), 2, log, /*priority=*/2));
  clock.advance(100ms);
  auto c = engine.submit(greedy_request(make_prompt(6, 3, 64), 2, log, /*priority=*/1));
  REQUIRE(b);
  REQUIRE(c);
  clock.advance(200ms);
  allow(1);
  // Token 3 is produced in the step after the one that first held B and C waiting, so that
  // step's snapshot is the one published now.
  allow(2);
  REQUIRE(wait_tokens(3));
  CHECK(engine.queue_delay(0) == 0ms);    // no vip request waits
  CHECK(engine.queue_delay(1) == 200ms);  // C, standard, arrived 200 ms ago
  CHECK(engine.queue_delay(2) == 300ms);  // B, batch, arrived 300 ms ago; C counts too
  clock.advance(50ms);
  CHECK(engine.queue_delay(2) == 350ms);  // the wait grows with the clock
  allow(1000);
  REQUIRE(log.wait_finished(3));
  CHECK(log.get(b.id).finished.has_value());
  // Once nothing waits, there is no delay.
  engine.stop();
  CHECK(engine.queue_delay(2) == 0ms);
}
