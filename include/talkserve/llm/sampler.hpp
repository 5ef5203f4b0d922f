#pragma once
// Turns one row of logits into the next token for one sequence.
//
// Order of the transforms (as in vLLM): repetition penalty, presence/frequency penalties,
// temperature, top-k, top-p, then one draw from the sequence's own RNG. Log-probabilities,
// when asked for, are the log-softmax of the RAW logits (before any transform).
//
// Reproducibility: each sequence owns its RNG (std::mt19937_64 seeded from the request's seed)
// and a sample consumes exactly one draw, so a seeded request yields the same tokens whatever
// else is batched with it, and after preemption and recompute.
//
// Thread-safety: sample() is a pure function of its arguments; a SamplingState belongs to one
// sequence and is used by one thread at a time.

#include <cstdint>
#include <random>
#include <span>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "talkserve/llm/sampling_params.hpp"

namespace talkserve::llm {

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0.0f;
};

struct SampleResult {
  int32_t token = 0;
  float logprob = 0.0f;             // of the sampled token (only when params.logprobs is set)
  std::vector<TokenLogprob> top;    // top-n, most likely first (only when params.logprobs > 0)
};

// Per-sequence sampling state: the RNG and the token counts the penalties need.
class SamplingState {
 public:
  SamplingState(std::uint64_t seed, std::span<const int32_t> prompt);
  void on_token(int32_t token) { ++output_counts_[token]; }

  std::mt19937_64& rng() { return rng_; }
  const std::unordered_map<int32_t, int>& output_counts() const { return output_counts_; }
  const std::unordered_set<int32_t>& prompt_tokens() const { return prompt_tokens_; }

 private:
  std::mt19937_64 rng_;
  std::unordered_map<int32_t, int> output_counts_;
  std::unordered_set<int32_t> prompt_tokens_;
};

// `logits` is one row (vocab_size floats); it is not modified.
SampleResult sample_token(std::span<const float> logits, const SamplingParams& params,
                          SamplingState& state);

}  // namespace talkserve::llm
