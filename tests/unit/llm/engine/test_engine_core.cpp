#include <catch2/catch.hpp>

#include "engine_test_support.hpp"
#include "fake_model_runner.hpp"
#include "talkserve/llm/engine_core.hpp"
#include "talkserve/sched/clock.hpp"

using namespace talkserve;
using namespace talkserve::llm;
using namespace talkserve::llm::testing;
using namespace std::chrono_literals;

namespace {

EngineConfig config(int max_num_seqs = 64, int max_batched = 256, int max_chunk = 64,
                    bool prefix_caching = true) {
  EngineConfig c;
  c.scheduler = {max_num_seqs, max_batched, max_chunk};
  c.enable_prefix_caching = prefix_caching;
  return c;
}

}  // namespace

TEST_CASE("engine core: greedy output matches the reference and frees every block",
          "[llm][engine]") {
  FakeModelRunner runner({});
  sched::ManualClock clock;
  EngineCore core(runner, config(), clock);
  EventLog log;
  const auto prompt = make_prompt(9, 1, 64);
  REQUIRE(core.add_request(1, greedy_request(prompt, 12, log)).empty());
  run_until_idle(core);
  const auto s = log.get(1);
  REQUIRE(s.finished);
  CHECK(s.finished->reason == FinishReason::length);
  CHECK(s.tokens == reference_greedy(prompt, 12, 64));
  CHECK(s.finished->usage.prompt_tokens == 9);
  CHECK(s.finished->usage.completion_tokens == 12);
  CHECK(s.events_after_finish == 0);
  CHECK(runner.violations.empty());
  CHECK(core.blocks().num_free_blocks() == core.blocks().num_total_blocks());
  const auto st = core.stats();
  CHECK(st.prompt_tokens_total == 9);
  CHECK(st.generation_tokens_total == 12);
  CHECK(st.requests_finished_total[static_cast<int>(FinishReason::length)] == 1);
}

TEST_CASE("engine core: the same greedy output alone and inside a batch of 32", "[llm][engine]") {
  // Small token budget and chunk: prompts are prefilled in chunks next to other decodes.
  FakeModelRunner runner({.vocab = 64, .max_seq_len = 128, .block_size = 4, .num_blocks = 512});
  sched::ManualClock clock;
  EngineCore core(runner, config(32, 48, 8), clock);
  EventLog log;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 32; ++i) {
    prompts.push_back(make_prompt(3 + (i * 5) % 29, i, 64));
    REQUIRE(core.add_request(static_cast<RequestId>(i + 1), greedy_request(prompts.back(), 20, log))
                .empty());
  }
  run_until_idle(core);
  CHECK(runner.violations.empty());
  for (int i = 0; i < 32; ++i) {
    const auto s = log.get(static_cast<RequestId>(i + 1));
    REQUIRE(s.finished);
    CHECK(s.tokens == reference_greedy(prompts[static_cast<std::size_t>(i)], 20, 64));
  }
  // Batching really happened, within the budget.
  std::size_t widest = 0;
  for (const auto& b : runner.steps) {
    int n = 0;
    for (const auto& seq : b.seqs) n += static_cast<int>(seq.tokens.size());
    CHECK(n <= 48);
    widest = std::max(widest, b.seqs.size());
  }
  CHECK(widest == 32);
  CHECK(core.blocks().num_free_blocks() == core.blocks().num_total_blocks());
}

TEST_CASE("engine core: a preempted sequence is recomputed with identical greedy output",
          "[llm][engine]") {
  // 16 blocks of 4 = 64 token slots for 4 sequences growing to 10 + 16 = 26 tokens each.
  FakeModelRunner runner({.vocab = 64, .max_seq_len = 128, .block_size = 4, .num_blocks = 16});
  sched::ManualClock clock;
  EngineCore core(runner, config(8, 64, 64, /*prefix caching*/ false), clock);
  EventLog log;
  std::vector<std::vector<int32_t>> prompts;
  const int prios[] = {2, 0, 1, 2};
  for (int i = 0; i < 4; ++i) {
    prompts.push_back(make_prompt(10, 100 + i, 64));
    REQUIRE(core.add_request(static_cast<RequestId>(i + 1),
                             greedy_request(prompts.back(), 16, log, prios[i]))
                .empty());
  }
  run_until_idle(core);
  CHECK(runner.violations.empty());
  CHECK(core.stats().num_preemptions_total > 0);
  for (int i = 0; i < 4; ++i) {
    const auto s = log.get(static_cast<RequestId>(i + 1));
    REQUIRE(s.finished);
    CHECK(s.finished->reason == FinishReason::length);
    CHECK(s.tokens == reference_greedy(prompts[static_cast<std::size_t>(i)], 16, 64));
  }
  // The vip is never the victim; the newest batch request (4) is the first one.
  CHECK(log.get(2).finished->timing.num_preemptions == 0);
  CHECK(log.get(4).finished->timing.num_preemptions >= 1);
  CHECK(core.blocks().num_free_blocks() == 16);
}

TEST_CASE("engine core: prefix cache shares blocks, counts hits and never writes a shared block",
          "[llm][engine]") {
  FakeModelRunner runner({.vocab = 64, .max_seq_len = 128, .block_size = 4, .num_blocks = 32});
  sched::ManualClock clock;
  EngineCore core(runner, config(), clock);
  runner.on_write = [&](int32_t block) { CHECK(core.blocks().ref_count(block) == 1); };
  EventLog log;
  const auto system = make_prompt(16, 5, 64);  // 4 full blocks
  auto a = system;
  a.push_back(3);
  a.push_back(4);
  auto b = system;
  b.push_back(9);

  REQUIRE(core.add_request(1, greedy_request(a, 4, log)).empty());
  core.step();  // A's prompt is computed and its 4 full blocks committed
  REQUIRE(core.add_request(2, greedy_request(b, 4, log)).empty());
  core.step();  // B attaches them while A still runs
  const auto& ta = core.blocks().block_table(1);
  const auto& tb = core.blocks().block_table(2);
  REQUIRE(tb.size() >= 5);
  for (int i = 0; i < 4; ++i) {
    CHECK(ta[static_cast<std::size_t>(i)] == tb[static_cast<std::size_t>(i)]);
    CHECK(core.blocks().ref_count(ta[static_cast<std::size_t>(i)]) == 2);
  }
  CHECK(ta[4] != tb[4]);
  // B's step carried one token only: the 16 shared ones were skipped.
  CHECK(runner.steps.back().seqs.back().tokens.size() == 1);
  CHECK(runner.steps.back().seqs.back().start_pos == 16);
  run_until_idle(core);
  CHECK(runner.violations.empty());
  CHECK(log.get(1).tokens == reference_greedy(a, 4, 64));
  CHECK(log.get(2).tokens == reference_greedy(b, 4, 64));
  CHECK(log.get(2).finished->usage.cached_prompt_tokens == 16);
  CHECK(log.get(1).finished->usage.cached_prompt_tokens == 0);
  auto st = core.stats();
  CHECK(st.prefix_cache_queries_total == a.size() + b.size());
  CHECK(st.prefix_cache_hits_total == 16);
  // Finished: all blocks reusable, the cached ones still there for the next request.
  CHECK(core.blocks().num_free_blocks() == 32);
  REQUIRE(core.add_request(3, greedy_request(b, 4, log)).empty());
  run_until_idle(core);
  CHECK(log.get(3).tokens == log.get(2).tokens);
  CHECK(log.get(3).finished->usage.cached_prompt_tokens == 16);
}

TEST_CASE("engine core: cancellation takes effect at the next step and frees blocks",
          "[llm][engine]") {
  FakeModelRunner runner({});
  sched::ManualClock clock;
  EngineCore core(runner, config(), clock);
  EventLog log;
  REQUIRE(core.add_request(1, greedy_request(make_prompt(10, 1, 64), 50, log)).empty());
  REQUIRE(core.add_request(2, greedy_request(make_prompt(10, 2, 64), 50, log)).empty());
  core.step();
  core.step();
  CHECK(core.blocks().num_free_blocks() < core.blocks().num_total_blocks());
  core.cancel(1);
  CHECK_FALSE(log.get(1).finished);  // not before the next step
  core.step();
  REQUIRE(log.get(1).finished);
  CHECK(log.get(1).finished->reason == FinishReason::cancelled);
  CHECK(log.get(1).finished->usage.completion_tokens == 2);
  CHECK(core.scheduler().num_running() == 1);
  core.cancel(2);
  core.cancel(2);   // twice: harmless
  core.cancel(99);  // unknown: ignored
  core.step();
  CHECK(log.get(2).finished->reason == FinishReason::cancelled);
  CHECK(log.get(2).events_after_finish == 0);
  CHECK_FALSE(core.has_work());
  CHECK(core.blocks().num_free_blocks() == core.blocks().num_total_blocks());
}

TEST_CASE("engine core: a passed deadline cancels the request (manual clock)", "[llm][engine]") {
  FakeModelRunner runner({});
  sched::ManualClock clock;
  EngineCore core(runner, config(), clock);
  EventLog log;
  auto req = greedy_request(make_prompt(5, 1, 64), 50, log);
  req.deadline = clock.now() + 1s;
  REQUIRE(core.add_request(1, std::move(req)).empty());
  core.step();
  clock.advance(999ms);
  core.step();
  CHECK_FALSE(log.get(1).finished);
  clock.advance(1ms);
  core.step();
  REQUIRE(log.get(1).finished);
  CHECK(log.get(1).finished->reason == FinishReason::cancelled);
  CHECK(log.get(1).finished->message == "deadline exceeded");
  CHECK(log.get(1).tokens.size() == 2);
  CHECK(log.get(1).finished->timing.e2e_latency == Approx(1.0));
  CHECK(core.blocks().num_free_blocks() == core.blocks().num_total_blocks());
}

TEST_CASE("engine core: invalid requests are rejected at submit", "[llm][engine]") {
  FakeModelRunner runner({.vocab = 64, .max_seq_len = 32, .block_size = 4, .num_blocks = 32});
  sched::ManualClock clock;
  EngineCore core(runner, config(), clock);
  EventLog log;
  CHECK_THAT(core.add_request(1, greedy_request(make_prompt(33, 1, 64), 4, log)),
             Catch::Contains("context length"));
  CHECK_THAT(core.add_request(2, greedy_request(make_prompt(32, 1, 64), 4, log)),
             Catch::Contains("context length"));
  CHECK_THAT(core.add_request(3, greedy_request({}, 4, log)), Catch::Contains("at least one"));
  CHECK_THAT(core.add_request(4, greedy_request({1, 64}, 4, log)), Catch::Contains("vocabulary"));
  auto stop = greedy_request({1, 2}, 4, log);
  stop.params.stop = {"x"};
  CHECK_THAT(core.add_request(5, std::move(stop)), Catch::Contains("detokenizer"));
  CHECK_FALSE(core.has_work());
  CHECK(log.streams.empty());
  FakeModelRunner tiny({.vocab = 64, .max_seq_len = 128, .block_size = 4, .num_blocks = 2});
  EngineCore small(tiny, config(), clock);
  CHECK_THAT(small.add_request(1, greedy_request(make_prompt(8, 1, 64), 4, log)),
             Catch::Contains("KV blocks"));
}

TEST_CASE("engine core: generation stops at the context length", "[llm][engine]") {
  FakeModelRunner runner({.vocab = 64, .max_seq_len = 16, .block_size = 4, .num_blocks = 32});
  sched::ManualClock clock;
  EngineCore core(runner, config(), clock);
  EventLog log;
  REQUIRE(core.add_request(1, greedy_request(make_prompt(10, 1, 64), 100, log)).empty());
  run_until_idle(core);
  CHECK(log.get(1).finished->reason == FinishReason::length);
  CHECK(log.get(1).tokens.size() == 6);
  CHECK(runner.violations.empty());
}

TEST_CASE("engine core: seeded sampling is reproducible and independent of the batch",
          "[llm][engine]") {
  auto seeded = [](EventLog& log, std::uint64_t seed) {
    auto r = greedy_request(make_prompt(7, 3, 64), 24, log);
    r.params.temperature = 0.8f;
    r.params.top_p = 0.9f;
    r.params.seed = seed;
    return r;
  };
  sched::ManualClock clock;
  std::vector<int32_t> alone;
  {
    FakeModelRunner runner({});
    EngineCore core(runner, config(), clock);
    EventLog log;
    REQUIRE(core.add_request(1, seeded(log, 77)).empty());
    run_until_idle(core);
    alone = log.get(1).tokens;
  }
  REQUIRE(alone.size() == 24);
  CHECK(alone != reference_greedy(make_prompt(7, 3, 64), 24, 64));  // it did sample
  {
    // Same request, now 12th among unseeded and differently seeded neighbours, with a pool
    // small enough to preempt.
    FakeModelRunner runner({.vocab = 64, .max_seq_len = 128, .block_size = 4, .num_blocks = 40});
    EngineCore core(runner, config(16, 32, 8, false), clock);
    EventLog log;
    for (RequestId i = 1; i <= 20; ++i) {
      if (i == 12) {
        REQUIRE(core.add_request(i, seeded(log, 77)).empty());
        continue;
      }
      auto r = greedy_request(make_prompt(5 + static_cast<int>(i), static_cast<int>(i), 64), 24, log);
      r.params.temperature = 1.0f;
      if (i % 2 == 0) r.params.seed = i;
      REQUIRE(core.add_request(i, std::move(r)).empty());
    }
    run_until_idle(core);
    CHECK(runner.violations.empty());
    CHECK(core.stats().num_preemptions_total > 0);
    CHECK(log.get(12).tokens == alone);
  }
  {
    FakeModelRunner runner({});
    EngineCore core(runner, config(), clock);
    EventLog log;
    REQUIRE(core.add_request(1, seeded(log, 78)).empty());
    run_until_idle(core);
    CHECK(log.get(1).tokens != alone);
  }
}

TEST_CASE("engine core: stop token ids, EOS and max_tokens", "[llm][engine]") {
  sched::ManualClock clock;
  const auto prompt = make_prompt(6, 9, 64);
  const auto ref = reference_greedy(prompt, 30, 64);
  {
    FakeModelRunner runner({});
    EngineCore core(runner, config(), clock, letter_detokenizer());
    EventLog log;
    auto r = greedy_request(prompt, 30, log);
    r.params.stop_token_ids = {ref[3]};
    REQUIRE(core.add_request(1, std::move(r)).empty());
    run_until_idle(core);
    const auto s = log.get(1);
    const auto first = static_cast<std::size_t>(
        std::find(ref.begin(), ref.end(), ref[3]) - ref.begin());  // it may occur earlier
    CHECK(s.finished->reason == FinishReason::stop);
    CHECK(s.finished->stop_token_id == ref[3]);
    CHECK(s.tokens == std::vector<int32_t>(ref.begin(), ref.begin() + first + 1));
    CHECK(s.text.size() == first);  // the stop token has no text
    CHECK(s.finished->usage.completion_tokens == static_cast<int>(first) + 1);
  }
  {
    FakeModelRunner runner({.eos_id = ref[5]});
    EngineCore core(runner, config(), clock);
    EventLog log;
    REQUIRE(core.add_request(1, greedy_request(prompt, 30, log)).empty());
    auto ignoring = greedy_request(prompt, 30, log);
    ignoring.params.ignore_eos = true;
    REQUIRE(core.add_request(2, std::move(ignoring)).empty());
    run_until_idle(core);
    CHECK(log.get(1).finished->reason == FinishReason::stop);
    CHECK(log.get(1).tokens.back() == ref[5]);
    CHECK(log.get(2).finished->reason == FinishReason::length);
    CHECK(log.get(2).tokens == ref);
  }
  {
    FakeModelRunner runner({});
    EngineCore core(runner, config(), clock);
    EventLog log;
    REQUIRE(core.add_request(1, greedy_request(prompt, 1, log)).empty());
    run_until_idle(core);
    CHECK(log.get(1).finished->reason == FinishReason::length);
    CHECK(log.get(1).tokens.size() == 1);
  }
}

TEST_CASE("engine core: stop strings end the request and are not emitted", "[llm][engine]") {
  FakeModelRunner runner({});
  sched::ManualClock clock;
  EngineCore core(runner, config(), clock, letter_detokenizer());
  EventLog log;
  const auto prompt = make_prompt(6, 4, 64);
  const auto ref = reference_greedy(prompt, 30, 64);
  std::string full;
  for (int32_t t : ref) full += LetterDetokenizer::letter(t);
  const std::string stop = full.substr(5, 2);
  const std::size_t at = full.find(stop);
  auto r = greedy_request(prompt, 30, log);
  r.params.stop = {stop};
  REQUIRE(core.add_request(1, std::move(r)).empty());
  auto plain = greedy_request(prompt, 30, log);
  REQUIRE(core.add_request(2, std::move(plain)).empty());
  run_until_idle(core);
  const auto s = log.get(1);
  CHECK(s.finished->reason == FinishReason::stop);
  CHECK(s.finished->stop_string == stop);
  CHECK(s.text == full.substr(0, at));
  CHECK(s.tokens.size() == at + 2);
  CHECK(log.get(2).text == full);
}

TEST_CASE("engine core: logprobs are streamed with the tokens", "[llm][engine]") {
  FakeModelRunner runner({});
  sched::ManualClock clock;
  EngineCore core(runner, config(), clock);
  EventLog log;
  auto r = greedy_request(make_prompt(4, 1, 64), 5, log);
  r.params.logprobs = 3;
  REQUIRE(core.add_request(1, std::move(r)).empty());
  run_until_idle(core);
  const auto s = log.get(1);
  REQUIRE(s.logprobs.size() == 5);
  for (std::size_t i = 0; i < 5; ++i) {
    REQUIRE(s.logprobs[i].top.size() == 3);
    CHECK(s.logprobs[i].top[0].token == s.tokens[i]);  // greedy: the top-1 is the sample
    CHECK(s.logprobs[i].logprob == Approx(s.logprobs[i].top[0].logprob));
    CHECK(s.logprobs[i].logprob < 0.0f);
  }
}

TEST_CASE("engine core: a failing model step fails its requests, not the engine",
          "[llm][engine]") {
  FakeModelRunner runner({});
  sched::ManualClock clock;
  EngineCore core(runner, config(), clock);
  EventLog log;
  REQUIRE(core.add_request(1, greedy_request(make_prompt(5, 1, 64), 5, log)).empty());
  core.step();
  runner.fail_next_step = true;
  core.step();
  REQUIRE(log.get(1).finished);
  CHECK(log.get(1).finished->reason == FinishReason::error);
  CHECK_THAT(log.get(1).finished->message, Catch::Contains("injected failure"));
  CHECK(core.blocks().num_free_blocks() == core.blocks().num_total_blocks());
  REQUIRE(core.add_request(2, greedy_request(make_prompt(5, 1, 64), 5, log)).empty());
  run_until_idle(core);
  CHECK(log.get(2).finished->reason == FinishReason::length);
  CHECK(log.get(2).tokens == reference_greedy(make_prompt(5, 1, 64), 5, 64));
}

TEST_CASE("engine core: per-request timing on the injected clock", "[llm][engine]") {
  FakeModelRunner runner({});
  sched::ManualClock clock;
  EngineCore core(runner, config(), clock);
  EventLog log;
  REQUIRE(core.add_request(1, greedy_request(make_prompt(5, 1, 64), 3, log)).empty());
  clock.advance(100ms);  // queued
  core.step();           // prefill + first token
  clock.advance(20ms);
  core.step();
  clock.advance(30ms);
  core.step();
  clock.advance(5ms);
  core.step();  // nothing left; finished during the previous step
  const auto t = log.get(1).finished->timing;
  CHECK(t.queue_time == Approx(0.1));
  REQUIRE(t.time_to_first_token);
  CHECK(*t.time_to_first_token == Approx(0.1));
  REQUIRE(t.inter_token_latencies.size() == 2);
  CHECK(t.inter_token_latencies[0] == Approx(0.02));
  CHECK(t.inter_token_latencies[1] == Approx(0.03));
  CHECK(t.e2e_latency == Approx(0.15));
}
