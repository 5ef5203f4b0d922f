// Continuous batching at the model boundary: a sequence's tokens do not depend on what else
// is in the step, on how its prompt is chunked, or on which physical blocks hold its KV.

#include <catch2/catch.hpp>

#include "greedy_driver.hpp"
#include "talkserve/llm/model_loader.hpp"
#include "talkserve/llm/tokenizer.hpp"
#include "test_paths.hpp"

namespace talkserve::llm::test {
namespace {

std::unique_ptr<ModelRunner> load_stories(int num_blocks) {
  ModelConfig cfg;
  cfg.path = stories_model();
  cfg.num_blocks = num_blocks;
  cfg.num_threads = 1;
  return load_model(cfg);
}

}  // namespace

TEST_CASE("greedy output is the same alone and inside a mixed batch", "[llm][model][golden]") {
  TokenizerConfig tc;
  tc.path = stories_tokenizer();
  auto tok = load_tokenizer(tc);
  const std::string golden = read_file(shared_dir() + "/models/stories260K/golden_greedy.stdout");
  const std::vector<std::string> prompts = {"Once upon a time", "The dog", "Lily and Ben went to the park",
                                            "Tom"};
  const std::vector<int> chunks = {0, 3, 7, 1};
  const std::vector<int> final_lens = {65, 40, 80, 23};

  // Alone, each in a fresh cache.
  std::vector<std::vector<int32_t>> alone;
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto model = load_stories(8);
    std::vector<GreedySequence> one(1);
    one[0].tokens = tok->encode(prompts[i], true);
    one[0].final_len = final_lens[i];
    one[0].block_table = {0, 1, 2, 3, 4, 5, 6, 7};
    run_greedy(*model, one);
    alone.push_back(one[0].tokens);
  }
  CHECK(runc_stdout(*tok, alone[0]) == golden);

  // Together: disjoint, shuffled, interleaved block tables out of one pool of 40 blocks; the
  // sequences finish at different steps, so later steps have fewer members.
  auto model = load_stories(40);
  const std::vector<int32_t> pool = shuffled_blocks(0, 40, 1234);
  std::vector<GreedySequence> seqs(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    seqs[i].tokens = tok->encode(prompts[i], true);
    seqs[i].prefill_chunk = chunks[i];
    seqs[i].final_len = final_lens[i];
    for (size_t b = i; b < pool.size(); b += prompts.size()) seqs[i].block_table.push_back(pool[b]);
  }
  const int steps = run_greedy(*model, seqs);
  CHECK(steps < 80);  // batched, not sequential
  for (size_t i = 0; i < prompts.size(); ++i) {
    INFO("prompt " << prompts[i]);
    CHECK(seqs[i].tokens == alone[i]);
  }
  CHECK(runc_stdout(*tok, seqs[0].tokens) == golden);
}

TEST_CASE("bad step batches are rejected and the model stays usable", "[llm][model][errors]") {
  auto model = load_stories(4);
  StepBatch ok;
  ok.seqs.push_back({{1, 403}, 0, {2}, true});
  StepOutput good = model->step(ok);
  CHECK(good.rows == 1);
  CHECK(good.logits.size() == 512);

  auto expect_error = [&](StepSequence s, const char* what) {
    StepBatch b;
    b.seqs.push_back(std::move(s));
    CHECK_THROWS_WITH(model->step(b), Catch::Contains(what));
  };
  expect_error({{1, 9999}, 0, {0}, true}, "token id 9999");
  expect_error({{1, 403}, 0, {7}, true}, "block id 7");
  expect_error({{1, 403}, 15, {0}, true}, "block table");
  expect_error({{1}, 600, {0, 1, 2, 3}, true}, "context length");
  expect_error({{}, 0, {0}, true}, "no new tokens");
  CHECK_THROWS_WITH(model->step(StepBatch{}), Catch::Contains("empty"));

  StepOutput again = model->step(ok);
  CHECK(again.logits == good.logits);

  // want_logits = false rows produce nothing.
  StepBatch none;
  none.seqs.push_back({{1, 403}, 0, {3}, false});
  CHECK(model->step(none).rows == 0);
}

}  // namespace talkserve::llm::test
