#pragma once
// Turns a stream of token ids into text pieces that are always whole UTF-8 characters:
// byte-fallback tokens (<0xE2><0x82><0xAC>) and byte-level BPE pieces may split a
// character, so incomplete trailing bytes are held back until they complete.
// Thread-safety: one instance per sequence; not thread-safe. The Tokenizer must outlive it.

#include <cstdint>
#include <string>

#include "talkserve/llm/tokenizer.hpp"

namespace talkserve::llm {

class StreamingDetokenizer {
 public:
  // prev_id: the last token before the first one pushed (e.g. the prompt's last token, or BOS).
  explicit StreamingDetokenizer(const Tokenizer& tokenizer, int32_t prev_id = -1);

  // Returns the text that became complete with this token (possibly empty). Invalid bytes
  // (never completable) come out as U+FFFD.
  std::string push(int32_t id);
  // Emits whatever is still held back; an incomplete tail becomes U+FFFD.
  std::string finish();

  // Validates and splits `bytes`: returns the longest prefix made of whole characters
  // (invalid sequences replaced by U+FFFD) and leaves an incomplete tail in `bytes`.
  static std::string take_complete_utf8(std::string& bytes);

 private:
  const Tokenizer& tokenizer_;
  int32_t prev_id_;
  std::string pending_;
};

}  // namespace talkserve::llm
