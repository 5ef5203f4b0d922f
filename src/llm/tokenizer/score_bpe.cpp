#include "llm/tokenizer/score_bpe.hpp"

#include <limits>

namespace talkserve::llm::detail {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

int parse_byte_piece(std::string_view piece) {
  if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return -1;
  const int hi = hex_value(piece[3]);
  const int lo = hex_value(piece[4]);
  return (hi < 0 || lo < 0) ? -1 : hi * 16 + lo;
}

void score_bpe_encode(const ScoreBpeVocab& vocab, std::string_view text, std::vector<int32_t>& out) {
  std::vector<int32_t> toks;
  toks.reserve(text.size());
  // One symbol per UTF-8 character (a lead byte and up to 3 continuation bytes).
  size_t i = 0;
  while (i < text.size()) {
    size_t n = 1;
    while (i + n < text.size() && n < 4 && (static_cast<unsigned char>(text[i + n]) & 0xC0) == 0x80) ++n;
    auto it = vocab.mergeable.find(std::string(text.substr(i, n)));
    if (it != vocab.mergeable.end()) {
      toks.push_back(it->second);
    } else {
      for (size_t k = 0; k < n; ++k) {
        const int32_t bt = vocab.byte_token[static_cast<unsigned char>(text[i + k])];
        toks.push_back(bt >= 0 ? bt : vocab.unk_id);
      }
    }
    i += n;
  }
  // pair_id[k] / pair_score[k]: the merge of toks[k] and toks[k + 1], if in the vocabulary.
  // Cached and only recomputed around each merge; the leftmost best is found by a scan.
  std::vector<float> pair_score(toks.size(), -std::numeric_limits<float>::infinity());
  std::vector<int32_t> pair_id(toks.size(), -1);
  auto score_pair = [&](size_t k) {
    pair_id[k] = -1;
    if (k + 1 >= toks.size()) return;
    auto it = vocab.mergeable.find(vocab.pieces[static_cast<size_t>(toks[k])] +
                                   vocab.pieces[static_cast<size_t>(toks[k + 1])]);
    if (it != vocab.mergeable.end()) {
      pair_id[k] = it->second;
      pair_score[k] = vocab.scores[static_cast<size_t>(it->second)];
    }
  };
  for (size_t k = 0; k + 1 < toks.size(); ++k) score_pair(k);
  while (toks.size() > 1) {
    float best = -1e10f;  // run.c's floor: pieces scored below it never merge
    size_t best_k = toks.size();
    for (size_t k = 0; k + 1 < toks.size(); ++k) {
      if (pair_id[k] >= 0 && pair_score[k] > best) {
        best = pair_score[k];
        best_k = k;
      }
    }
    if (best_k == toks.size()) break;
    const auto next = static_cast<std::ptrdiff_t>(best_k) + 1;
    toks[best_k] = pair_id[best_k];
    toks.erase(toks.begin() + next);
    pair_score.erase(pair_score.begin() + next);
    pair_id.erase(pair_id.begin() + next);
    score_pair(best_k);
    if (best_k > 0) score_pair(best_k - 1);
  }
  out.insert(out.end(), toks.begin(), toks.end());
}

}  // namespace talkserve::llm::detail
