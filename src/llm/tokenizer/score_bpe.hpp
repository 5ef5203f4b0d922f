#pragma once
// Score-ordered BPE, the algorithm of SentencePiece's BPE model and of llama2.c's run.c:
// split the text into UTF-8 characters (unknown ones into byte-fallback tokens), then
// repeatedly merge the adjacent pair whose concatenation is the vocabulary piece with the
// highest score, leftmost first on ties, until no pair is in the vocabulary.

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace talkserve::llm::detail {

struct ScoreBpeVocab {
  std::vector<std::string> pieces;  // by id, in the encoded form (SentencePiece: ▁ for space)
  std::vector<float> scores;        // by id
  // Pieces that characters and merges may produce (llama2.c: all; SentencePiece: normal and
  // user-defined ones). First id wins on duplicates.
  std::unordered_map<std::string, int32_t> mergeable;
  int32_t byte_token[256];          // <0xXX> token per byte, -1 if absent
  int32_t unk_id = 0;

  ScoreBpeVocab() {
    for (int32_t& b : byte_token) b = -1;
  }
};

// "<0xAB>" -> 0xAB, anything else -> -1.
int parse_byte_piece(std::string_view piece);

// Appends the ids of `text` (already normalized) to `out`.
void score_bpe_encode(const ScoreBpeVocab& vocab, std::string_view text, std::vector<int32_t>& out);

}  // namespace talkserve::llm::detail
