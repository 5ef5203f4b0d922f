#pragma once
// The few Unicode facts the byte-level BPE pre-tokenizer needs: UTF-8 decoding that never
// fails, and the classes \p{L}, \p{N} and \s of the split regexes.

#include <cstdint>
#include <string_view>
#include <vector>

namespace talkserve::llm::detail {

enum class CharClass : uint8_t { kLetter, kNumber, kSpace, kOther };

// General category L* -> kLetter, N* -> kNumber (tables generated from Unicode 14 by
// scripts/gen-unicode-tables.py), White_Space -> kSpace, everything else -> kOther.
CharClass classify(char32_t cp);

struct CodePoint {
  char32_t cp;      // U+FFFD for an invalid byte
  uint32_t offset;  // byte offset in the text
  uint32_t len;     // bytes (1 for an invalid byte, which is then its own "character")
};

std::vector<CodePoint> decode_utf8(std::string_view text);
void append_utf8(char32_t cp, std::string& out);

}  // namespace talkserve::llm::detail
