#pragma once
// Per-request sampling parameters (OpenAI / vLLM semantics) and their validation.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace talkserve::llm {

struct SamplingParams {
  // 0 selects greedy decoding (argmax; ties go to the lowest token id).
  float temperature = 1.0f;
  int top_k = 0;       // <= 0: disabled
  float top_p = 1.0f;  // (0, 1]; 1: disabled
  // HF / llama.cpp semantics over prompt + generated tokens: a positive logit is divided by
  // the penalty, a negative one multiplied. 1: disabled.
  float repetition_penalty = 1.0f;
  // OpenAI semantics over generated tokens only:
  //   logit[t] -= presence_penalty * (count[t] > 0) + frequency_penalty * count[t]
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  // Seeds this request's own RNG, so its samples do not depend on what else is in the batch.
  // Unset: the engine draws a seed from its own generator.
  std::optional<std::uint64_t> seed;
  int max_tokens = 16;                 // generated tokens, further capped by the context length
  std::vector<int32_t> stop_token_ids;  // finish "stop"; the token counts in usage, not in text
  std::vector<std::string> stop;       // stop strings, matched on decoded text, not emitted
  bool ignore_eos = false;             // do not stop on the model's EOS id (benchmarks)
  // Top-n log-probabilities per generated token (0..20). Computed as log-softmax of the RAW
  // model logits, i.e. before penalties, temperature, top-k and top-p (vLLM's default), so
  // they describe the model, not the sampling transform.
  std::optional<int> logprobs;

  // Returns an empty string when valid, otherwise a message naming the bad field.
  std::string validate() const;
};

}  // namespace talkserve::llm
