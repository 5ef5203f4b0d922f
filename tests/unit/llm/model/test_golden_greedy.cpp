// The project's reference output: llama2.c run.c,
//   ./run stories260K.bin -z tok512.bin -t 0 -n 64 -i "Once upon a time"
// -n 64 counts positions including the prompt's: run.c runs forward at pos 0..63 and prints
// the token chosen at each, so the sequence (BOS + prompt + generated) has 65 tokens.

#include <catch2/catch.hpp>

#include "greedy_driver.hpp"
#include "talkserve/llm/model_loader.hpp"
#include "talkserve/llm/tokenizer.hpp"
#include "test_paths.hpp"

namespace talkserve::llm::test {
namespace {

constexpr int kRunCSteps = 64;

std::unique_ptr<ModelRunner> load_stories(int num_blocks = 64) {
  ModelConfig cfg;
  cfg.path = stories_model();
  cfg.num_blocks = num_blocks;
  cfg.num_threads = 1;
  return load_model(cfg);
}

std::unique_ptr<Tokenizer> load_tok512() {
  TokenizerConfig tc;
  tc.path = stories_tokenizer();
  tc.vocab_size = 512;
  return load_tokenizer(tc);
}

}  // namespace

TEST_CASE("stories260K loads with the documented hyper-parameters", "[llm][model]") {
  auto model = load_stories();
  const ModelInfo& info = model->info();
  CHECK(info.name == "stories260K");
  CHECK(info.dim == 64);
  CHECK(info.n_layers == 5);
  CHECK(info.n_heads == 8);
  CHECK(info.n_kv_heads == 4);
  CHECK(info.head_dim == 8);
  CHECK(info.vocab_size == 512);
  CHECK(info.max_seq_len == 512);
  CHECK(model->block_size() == 16);
  CHECK(model->num_blocks() == 64);
}

TEST_CASE("greedy stories260K output equals llama2.c run.c byte for byte", "[llm][model][golden]") {
  auto tok = load_tok512();
  auto model = load_stories();
  const std::string golden = read_file(shared_dir() + "/models/stories260K/golden_greedy.stdout");
  const std::vector<int32_t> prompt = tok->encode("Once upon a time", /*add_bos=*/true);

  for (int chunk : {0, 1, 3, 7}) {
    DYNAMIC_SECTION("prefill chunk " << chunk) {
      std::vector<GreedySequence> seqs(1);
      seqs[0].tokens = prompt;
      seqs[0].prefill_chunk = chunk;
      seqs[0].final_len = kRunCSteps + 1;
      seqs[0].block_table = shuffled_blocks(0, 64, 7u + static_cast<unsigned>(chunk));
      run_greedy(*model, seqs);
      CHECK(runc_stdout(*tok, seqs[0].tokens) == golden);
    }
  }
}

}  // namespace talkserve::llm::test
