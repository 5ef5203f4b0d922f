// The threaded Engine (real clock, its own thread, requests submitted concurrently from
// several threads) serving stories260K: batch composition is now up to timing, and the golden
// request must still produce llama2.c's output byte for byte.

#include <catch2/catch.hpp>

#include <atomic>
#include <mutex>
#include <thread>

#include "golden_support.hpp"
#include "talkserve/llm/engine.hpp"
#include "talkserve/llm/tokenizer_detokenizer.hpp"
#include "talkserve/sched/clock.hpp"

using namespace talkserve;
using namespace talkserve::llm;
using namespace talkserve::llm::golden;

TEST_CASE("golden engine thread: the golden output alone", "[llm][engine][golden][thread]") {
  auto runner = load_stories();
  Engine engine(*runner, engine_config(), sched::steady_clock(),
                make_detokenizer_factory(tokenizer()));
  engine.start();
  EventRecorder rec;
  const SubmitResult r = engine.submit(make_request(golden_spec(), rec));
  REQUIRE(r);
  REQUIRE(rec.wait_finished(1));
  const Stream s = rec.get(r.id);
  REQUIRE(s.finished);
  CHECK(s.finished->reason == FinishReason::length);
  CHECK(runc_text(golden_prompt(), s.text) == golden_stdout());
  CHECK(s.finished->timing.time_to_first_token.has_value());
  CHECK(s.finished->timing.inter_token_latencies.size() == s.tokens.size() - 1);
  engine.stop();
  CHECK(engine.stats().num_free_blocks == engine.num_blocks());
}

TEST_CASE("golden engine thread: 33 requests submitted concurrently from 4 threads",
          "[llm][engine][golden][thread]") {
  auto runner = load_stories();
  std::vector<RequestSpec> specs = other_specs();
  specs.push_back(golden_spec());
  RequestSpec sampled = golden_spec();
  sampled.temperature = 0.8f;
  sampled.seed = 7;
  sampled.max_tokens = 80;
  specs.push_back(sampled);
  const std::vector<Stream> alone = run_each_alone(*runner, specs, engine_config());

  Engine engine(*runner, engine_config(7), sched::steady_clock(),
                make_detokenizer_factory(tokenizer()));
  engine.start();
  EventRecorder rec;
  std::vector<RequestId> ids(specs.size(), 0);
  std::atomic<int> rejected{0};  // Catch assertions are not thread-safe: checked after join
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (std::size_t i = static_cast<std::size_t>(t); i < specs.size(); i += 4) {
        const SubmitResult r = engine.submit(make_request(specs[i], rec));
        if (!r) ++rejected;
        ids[i] = r.id;  // each thread writes its own indices
      }
    });
  }
  for (auto& th : threads) th.join();
  REQUIRE(rejected == 0);
  REQUIRE(rec.wait_finished(specs.size()));
  for (std::size_t i = 0; i < specs.size(); ++i) {
    INFO("spec " << i);
    const Stream s = rec.get(ids[i]);
    REQUIRE(s.finished);
    CHECK(s.tokens == alone[i].tokens);
    CHECK(s.text == alone[i].text);
    CHECK(s.events_after_finish == 0);
  }
  CHECK(runc_text(golden_prompt(), rec.get(ids[specs.size() - 2]).text) == golden_stdout());
  engine.stop();
  const EngineStats st = engine.stats();
  CHECK(st.num_free_blocks == st.num_total_blocks);
  CHECK(st.requests_finished_total[static_cast<int>(FinishReason::cancelled)] == 0);
}

TEST_CASE("golden engine thread: cancel mid-generation frees every block",
          "[llm][engine][golden][thread][cancel]") {
  auto runner = load_stories(64);
  Engine engine(*runner, engine_config(), sched::steady_clock(),
                make_detokenizer_factory(tokenizer()));
  engine.start();
  EventRecorder rec;
  // Cancelled from its own callback after 10 tokens (the callback runs on the engine thread;
  // cancel() only queues, so this is allowed).
  std::mutex id_mutex;
  RequestId id = 0;
  std::atomic<int> seen{0};
  RequestSpec spec = golden_spec();
  spec.ignore_eos = true;
  spec.max_tokens = 400;
  GenerationRequest req = make_request(spec, rec);
  req.on_event = [&, inner = req.on_event](GenerationEvent&& ev) {
    const bool token = std::holds_alternative<TokenEvent>(ev);
    inner(std::move(ev));
    if (token && ++seen == 10) {
      std::lock_guard lock(id_mutex);
      engine.cancel(id);
    }
  };
  {
    // Holding id_mutex until the id is known: the callback cannot cancel id 0.
    std::lock_guard lock(id_mutex);
    const SubmitResult r = engine.submit(std::move(req));
    REQUIRE(r);
    id = r.id;
  }
  REQUIRE(rec.wait_finished(1));
  const Stream s = rec.get(id);
  REQUIRE(s.finished);
  CHECK(s.finished->reason == FinishReason::cancelled);
  CHECK(s.tokens.size() == 10);  // the cancel lands at the very next step
  engine.stop();  // the snapshot after the last step
  const EngineStats st = engine.stats();
  CHECK(st.num_free_blocks == st.num_total_blocks);
  CHECK(st.num_running == 0);
  CHECK(st.requests_finished_total[static_cast<int>(FinishReason::cancelled)] == 1);
}
