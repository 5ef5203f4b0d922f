#pragma once
// A minimal engine for tests: steps several sequences together through a ModelRunner,
// each one prefilling its prompt in chunks and then decoding greedily (argmax).

#include <cstdint>
#include <string>
#include <vector>

#include "talkserve/llm/model_runner.hpp"
#include "talkserve/llm/tokenizer.hpp"

namespace talkserve::llm::test {

struct GreedySequence {
  std::vector<int32_t> tokens;       // starts as the prompt; generated tokens are appended
  std::vector<int32_t> block_table;  // must cover final_len positions
  int prefill_chunk = 0;             // 0 = the whole prompt in one step
  int final_len = 0;                 // stop when tokens.size() reaches this
  int cached = 0;                    // positions already in the KV cache
};

int argmax(const float* row, int n);  // first maximum, as llama2.c's sample_argmax

// Runs every sequence to its final_len, all of them in the same steps while they last.
// Returns the number of steps taken.
int run_greedy(ModelRunner& model, std::vector<GreedySequence>& seqs);

// What llama2.c run.c prints for a token sequence starting with BOS: each token after the
// first through decode(prev, token) and safe_printf, stopping at a BOS, then a newline.
std::string runc_stdout(const Tokenizer& tok, const std::vector<int32_t>& seq);

// Block ids [first, first + n) in a deterministic shuffled order.
std::vector<int32_t> shuffled_blocks(int first, int n, unsigned seed);

}  // namespace talkserve::llm::test
