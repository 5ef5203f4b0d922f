#pragma once
// The split step of byte-level BPE tokenizers, hand-written because std::regex has no
// \p{L} / \p{N}. Each pattern is implemented as the regex engine would match it: at each
// position the alternatives are tried in order, with the backtracking that matters
// (\s+(?!\S) gives back its last space; \s*[\r\n]+ ends at the run's last newline).
// Approximations: Unicode 14 character data; no NFC normalisation beforehand (Qwen2's
// tokenizer.json asks for NFC; already-composed text, the common case, is unaffected).

#include <string_view>
#include <vector>

namespace talkserve::llm::detail {

enum class SplitPattern {
  // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  kGpt2,
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
  // \s*[\r\n]+|\s+(?!\S)|\s+
  kLlama3,
  // The same with \p{N} (single digits) in place of \p{N}{1,3}.
  kQwen2,
};

// Splits text into consecutive pieces covering it exactly (views into `text`).
std::vector<std::string_view> pretokenize(std::string_view text, SplitPattern pattern);

}  // namespace talkserve::llm::detail
