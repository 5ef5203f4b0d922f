#pragma once
// Adapts the project's Tokenizer / StreamingDetokenizer to the engine's DetokenizerFactory.
// Header-only on purpose: the engine library stays free of the tokenizer library; whoever
// includes this links talkserve_llm_tokenizer.

#include <memory>

#include "talkserve/llm/detokenizer.hpp"
#include "talkserve/llm/streaming_detokenizer.hpp"
#include "talkserve/llm/tokenizer.hpp"

namespace talkserve::llm {

class TokenizerDetokenizer final : public IncrementalDetokenizer {
 public:
  TokenizerDetokenizer(const Tokenizer& tokenizer, int32_t prev_id)
      : impl_(tokenizer, prev_id), vocab_(tokenizer.vocab_size()) {}
  // A model's vocabulary can be padded past the tokenizer's (Qwen2: 151936 vs 151665); a
  // sampled padding id has no text rather than failing the whole batch.
  std::string push(int32_t token) override {
    if (token < 0 || token >= vocab_) return {};
    return impl_.push(token);
  }
  std::string finish() override { return impl_.finish(); }

 private:
  StreamingDetokenizer impl_;
  int32_t vocab_;
};

// `tokenizer` must outlive the engine.
inline DetokenizerFactory make_detokenizer_factory(const Tokenizer& tokenizer) {
  return [&tokenizer](std::span<const int32_t> prompt) -> std::unique_ptr<IncrementalDetokenizer> {
    return std::make_unique<TokenizerDetokenizer>(tokenizer, prompt.empty() ? -1 : prompt.back());
  };
}

}  // namespace talkserve::llm
