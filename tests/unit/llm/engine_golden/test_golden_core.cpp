// The continuous-batching engine (EngineCore, stepped by hand with a ManualClock) serving the
// real stories260K model: the golden request must produce llama2.c's output byte for byte
// however it is scheduled: alone, inside a batch of 32, with any prefill chunk, with or
// without prefix caching, served partly from the prefix cache, and after preemption.

#include <catch2/catch.hpp>

#include "golden_support.hpp"
#include "talkserve/llm/tokenizer_detokenizer.hpp"
#include "talkserve/sched/clock.hpp"

using namespace talkserve;
using namespace talkserve::llm;
using namespace talkserve::llm::golden;

namespace {

// The 32 other requests, each run alone (fresh engine, fresh cache): the reference for their
// output inside a batch. Greedy and seeded requests only, so this is well defined.
const std::vector<Stream>& others_alone() {
  static const std::vector<Stream> alone = [] {
    auto runner = load_stories();
    return run_each_alone(*runner, other_specs(), engine_config());
  }();
  return alone;
}

// The golden request in the middle of the 32 others (ids 1..16 before it, 18..33 after).
constexpr std::size_t kGoldenIndex = 16;
std::vector<RequestSpec> batch_with_golden(const RequestSpec& golden = golden_spec()) {
  std::vector<RequestSpec> specs = other_specs();
  specs.insert(specs.begin() + static_cast<std::ptrdiff_t>(kGoldenIndex), golden);
  return specs;
}

std::size_t other_index(std::size_t batch_index) {
  return batch_index < kGoldenIndex ? batch_index : batch_index - 1;
}

void check_golden(const Stream& s, const std::vector<int32_t>& prompt = golden_prompt()) {
  REQUIRE(s.finished);
  CHECK(s.finished->reason == FinishReason::length);
  CHECK(runc_text(prompt, s.text) == golden_stdout());
  CHECK(static_cast<int>(prompt.size() + s.tokens.size()) == kRunCPositions + 1);
  // The streamed text is the detokenization of the streamed ids.
  CHECK(tokenizer().decode(s.tokens, prompt.back()) == s.text);
  CHECK(s.finished->usage.prompt_tokens == static_cast<int>(prompt.size()));
  CHECK(s.finished->usage.completion_tokens == static_cast<int>(s.tokens.size()));
  CHECK(s.events_after_finish == 0);
}

// Every other request in `run` produced what it produces alone.
void check_others(const CoreRun& run) {
  const auto& alone = others_alone();
  for (std::size_t i = 0; i < alone.size() + 1; ++i) {
    if (i == kGoldenIndex) continue;
    const Stream& s = run.streams.at(static_cast<RequestId>(i + 1));
    const Stream& ref = alone[other_index(i)];
    INFO("request " << i + 1 << " (other #" << other_index(i) << ")");
    REQUIRE(s.finished);
    CHECK(s.finished->reason == ref.finished->reason);
    CHECK(s.tokens == ref.tokens);
    CHECK(s.text == ref.text);
  }
}

}  // namespace

TEST_CASE("golden: greedy stories260K through the engine equals llama2.c run.c byte for byte",
          "[llm][engine][golden]") {
  auto runner = load_stories();
  const CoreRun run = run_core(*runner, engine_config(), {golden_spec()});
  const Stream& s = run.streams.at(1);
  check_golden(s);
  CHECK(s.finished->usage.cached_prompt_tokens == 0);
  CHECK(s.token_events == golden_max_tokens());
  CHECK(run.free_blocks_after == run.total_blocks);
  CHECK(run.stats.generation_tokens_total == static_cast<std::uint64_t>(golden_max_tokens()));
  CHECK(run.stats.requests_finished_total[static_cast<int>(FinishReason::length)] == 1);
}

TEST_CASE("golden: every prefill chunk size gives the golden output alone",
          "[llm][engine][golden]") {
  auto runner = load_stories();
  for (int chunk : {1, 3, 7, 512}) {
    for (bool caching : {true, false}) {
      DYNAMIC_SECTION("chunk " << chunk << ", prefix caching " << caching) {
        const CoreRun run = run_core(*runner, engine_config(chunk, caching), {golden_spec()});
        check_golden(run.streams.at(1));
        CHECK(run.free_blocks_after == run.total_blocks);
      }
    }
  }
}

TEST_CASE("golden: the same output inside a batch of 32 other requests, any chunk, cache on/off",
          "[llm][engine][golden][batch]") {
  auto runner = load_stories();
  const std::vector<RequestSpec> specs = batch_with_golden();
  REQUIRE(specs.size() == 33);
  for (int chunk : {1, 3, 7, 512}) {
    for (bool caching : {true, false}) {
      DYNAMIC_SECTION("chunk " << chunk << ", prefix caching " << caching) {
        // A token budget of 128 per step: with 33 sequences decoding, the prefills of the long
        // prompts are spread over several steps next to the decodes.
        const CoreRun run = run_core(*runner, engine_config(chunk, caching), specs);
        check_golden(run.streams.at(kGoldenIndex + 1));
        check_others(run);
        CHECK(run.max_running == 33);  // really batched
        CHECK(run.stats.num_preemptions_total == 0);
        CHECK(run.free_blocks_after == run.total_blocks);
      }
    }
  }
}

TEST_CASE("golden: a second request sharing the prefix is served from the cache, same output",
          "[llm][engine][golden][prefix]") {
  SECTION("block size 4: the golden prompt's first block is reused") {
    auto runner = load_stories(/*num_blocks*/ 256, /*block_size*/ 4);
    sched::ManualClock clock;
    EngineCore core(*runner, engine_config(), clock, make_detokenizer_factory(tokenizer()));
    EventRecorder rec;
    REQUIRE(core.add_request(1, make_request(golden_spec(), rec)).empty());
    while (core.has_work()) core.step();
    check_golden(rec.get(1));
    CHECK(rec.get(1).finished->usage.cached_prompt_tokens == 0);
    // Again, after the first finished (its blocks are evictable, not gone), and then twice at
    // once (the second attaches blocks the first holds).
    REQUIRE(core.add_request(2, make_request(golden_spec(), rec)).empty());
    while (core.has_work()) core.step();
    REQUIRE(core.add_request(3, make_request(golden_spec(), rec)).empty());
    core.step();
    REQUIRE(core.add_request(4, make_request(golden_spec(), rec)).empty());
    while (core.has_work()) core.step();
    const int full_prompt_blocks = (static_cast<int>(golden_prompt().size()) - 1) / 4 * 4;
    REQUIRE(full_prompt_blocks > 0);
    for (RequestId id : {2, 3, 4}) {
      INFO("request " << id);
      check_golden(rec.get(id));
      CHECK(rec.get(id).finished->usage.cached_prompt_tokens == full_prompt_blocks);
    }
    CHECK(core.stats().prefix_cache_hits_total > 0);
    CHECK(core.blocks().num_free_blocks() == core.blocks().num_total_blocks());
  }

  SECTION("block size 16: a prompt made of the golden text's first 40 tokens") {
    auto runner = load_stories();
    const std::vector<int32_t> prompt = golden_prompt();
    for (bool caching : {true, false}) {
      DYNAMIC_SECTION("prefix caching " << caching) {
        sched::ManualClock clock;
        EngineCore core(*runner, engine_config(512, caching), clock,
                        make_detokenizer_factory(tokenizer()));
        EventRecorder rec;
        REQUIRE(core.add_request(1, make_request(golden_spec(), rec)).empty());
        while (core.has_work()) core.step();
        const Stream a = rec.get(1);
        check_golden(a);
        // B's prompt is the first 40 tokens of A's sequence (prompt + generated); its greedy
        // continuation is the rest of the golden sequence. Blocks 0 and 1 (32 tokens, partly
        // generated ones) come from A.
        std::vector<int32_t> seq = prompt;
        seq.insert(seq.end(), a.tokens.begin(), a.tokens.end());
        RequestSpec b;
        b.prompt.assign(seq.begin(), seq.begin() + 40);
        b.max_tokens = kRunCPositions + 1 - 40;
        REQUIRE(core.add_request(2, make_request(b, rec)).empty());
        while (core.has_work()) core.step();
        const Stream sb = rec.get(2);
        check_golden(sb, b.prompt);
        CHECK(sb.tokens == std::vector<int32_t>(seq.begin() + 40, seq.end()));
        CHECK(sb.finished->usage.cached_prompt_tokens == (caching ? 32 : 0));
        CHECK(core.blocks().num_free_blocks() == core.blocks().num_total_blocks());
      }
    }
  }
}

TEST_CASE("golden: a preempted and recomputed request still gives the golden output",
          "[llm][engine][golden][preemption]") {
  // A tiny KV pool: the golden request (lowest priority, newest) must be preempted by the
  // others and recomputed from its prompt and generated tokens.
  struct Pool {
    int block_size, num_blocks, chunk;
    bool caching;
  };
  for (const Pool p : {Pool{16, 12, 512, false}, Pool{16, 12, 512, true}, Pool{4, 40, 7, true},
                       Pool{4, 40, 3, false}}) {
    DYNAMIC_SECTION("block size " << p.block_size << ", " << p.num_blocks << " blocks, chunk "
                                  << p.chunk << ", prefix caching " << p.caching) {
      auto runner = load_stories(p.num_blocks, p.block_size);
      std::vector<RequestSpec> specs;
      const std::vector<std::string> texts = {"The dog", "Lily and Ben went to the park", "Tom",
                                              "One day, a little bird", "Mom said",
                                              "There was a big tree"};
      for (std::size_t i = 0; i < texts.size(); ++i) {
        RequestSpec s;
        s.prompt = tokenizer().encode(texts[i], true);
        s.max_tokens = 60 + static_cast<int>(i) * 7;
        s.ignore_eos = true;  // they keep growing: the pool runs out
        s.priority = i % 2 == 0 ? 0 : 1;
        specs.push_back(s);
      }
      RequestSpec g = golden_spec();
      g.priority = 2;
      specs.push_back(g);
      RequestSpec sampled = golden_spec();
      sampled.temperature = 0.8f;
      sampled.seed = 7;
      sampled.priority = 2;
      sampled.max_tokens = 60;
      specs.push_back(sampled);

      const EngineConfig cfg = engine_config(p.chunk, p.caching);
      const CoreRun run = run_core(*runner, cfg, specs);
      CHECK(run.stats.num_preemptions_total > 0);
      const Stream& gs = run.streams.at(texts.size() + 1);
      check_golden(gs);
      CHECK(gs.finished->timing.num_preemptions >= 1);
      const auto alone = run_each_alone(*runner, specs, cfg);
      for (std::size_t i = 0; i < specs.size(); ++i) {
        INFO("request " << i + 1);
        const Stream& s = run.streams.at(static_cast<RequestId>(i + 1));
        REQUIRE(s.finished);
        CHECK(s.finished->reason == alone[i].finished->reason);
        CHECK(s.tokens == alone[i].tokens);
        CHECK(s.text == alone[i].text);
        CHECK(alone[i].finished->timing.num_preemptions == 0);
      }
      CHECK(run.streams.at(specs.size()).finished->timing.num_preemptions >= 1);
      CHECK(run.free_blocks_after == run.total_blocks);
    }
  }
}

TEST_CASE("golden: a seeded sampled request (temperature 0.8, seed 7) is reproducible",
          "[llm][engine][golden][sampling]") {
  auto runner = load_stories();
  RequestSpec sampled = golden_spec();
  sampled.temperature = 0.8f;
  sampled.seed = 7;
  sampled.max_tokens = 100;
  sampled.ignore_eos = true;
  const Stream alone = run_core(*runner, engine_config(), {sampled}).streams.at(1);
  REQUIRE(alone.finished);
  REQUIRE(alone.tokens.size() == 100);
  // It really sampled: the greedy continuation differs.
  const Stream greedy = run_core(*runner, engine_config(), {golden_spec()}).streams.at(1);
  CHECK(std::vector<int32_t>(alone.tokens.begin(), alone.tokens.begin() + 20) !=
        std::vector<int32_t>(greedy.tokens.begin(), greedy.tokens.begin() + 20));

  CHECK(run_core(*runner, engine_config(), {sampled}).streams.at(1).tokens == alone.tokens);
  for (int chunk : {1, 7, 512}) {
    for (bool caching : {true, false}) {
      DYNAMIC_SECTION("in a batch of 32, chunk " << chunk << ", prefix caching " << caching) {
        const CoreRun run = run_core(*runner, engine_config(chunk, caching),
                                     batch_with_golden(sampled));
        const Stream& s = run.streams.at(kGoldenIndex + 1);
        CHECK(s.tokens == alone.tokens);
        CHECK(s.text == alone.text);
        check_others(run);
      }
    }
  }
  SECTION("without a seed the engine draws one: a different sample") {
    RequestSpec unseeded = sampled;
    unseeded.seed.reset();
    const Stream u = run_core(*runner, engine_config(), {unseeded}).streams.at(1);
    CHECK(u.tokens.size() == 100);
    CHECK(u.tokens != alone.tokens);
  }
}

TEST_CASE("golden: cancelling mid-generation frees every KV block", "[llm][engine][golden][cancel]") {
  auto runner = load_stories(64);
  for (bool caching : {true, false}) {
    DYNAMIC_SECTION("prefix caching " << caching) {
      sched::ManualClock clock;
      EngineCore core(*runner, engine_config(7, caching), clock,
                      make_detokenizer_factory(tokenizer()));
      EventRecorder rec;
      std::vector<RequestSpec> specs = other_specs();
      specs.resize(8);
      specs.push_back(golden_spec());
      for (std::size_t i = 0; i < specs.size(); ++i)
        REQUIRE(core.add_request(static_cast<RequestId>(i + 1), make_request(specs[i], rec))
                    .empty());
      for (int i = 0; i < 12; ++i) core.step();
      const auto golden_id = static_cast<RequestId>(specs.size());
      REQUIRE_FALSE(rec.get(golden_id).finished);
      REQUIRE(rec.get(golden_id).tokens.size() > 0);
      CHECK(core.blocks().num_free_blocks() < core.blocks().num_total_blocks());

      // The golden one alone first: the others keep running unharmed.
      core.cancel(golden_id);
      core.step();
      const Stream g = rec.get(golden_id);
      REQUIRE(g.finished);
      CHECK(g.finished->reason == FinishReason::cancelled);
      CHECK(g.finished->usage.completion_tokens == static_cast<int>(g.tokens.size()));
      CHECK(g.finished->usage.completion_tokens < golden_max_tokens());
      CHECK_FALSE(core.blocks().has_sequence(golden_id));
      // What it produced so far is the golden prefix.
      std::string partial = runc_text(golden_prompt(), g.text);
      partial.pop_back();  // the newline run.c prints at the end
      CHECK(golden_stdout().rfind(partial, 0) == 0);

      // Then everything still in flight.
      for (std::size_t i = 0; i + 1 < specs.size(); ++i) core.cancel(static_cast<RequestId>(i + 1));
      core.step();
      CHECK_FALSE(core.has_work());
      CHECK(rec.num_finished() == specs.size());
      for (std::size_t i = 0; i < specs.size(); ++i)
        CHECK(rec.get(static_cast<RequestId>(i + 1)).events_after_finish == 0);
      const EngineStats st = core.stats();
      CHECK(st.num_running == 0);
      CHECK(st.num_waiting == 0);
      CHECK(st.num_free_blocks == st.num_total_blocks);
      CHECK(st.kv_cache_usage == 0.0);
      CHECK(core.blocks().num_free_blocks() == core.blocks().num_total_blocks());
    }
  }
}
