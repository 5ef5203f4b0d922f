#include "greedy_driver.hpp"

#include <algorithm>
#include <cctype>
#include <numeric>
#include <random>
#include <stdexcept>

namespace talkserve::llm::test {

int argmax(const float* row, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i) {
    if (row[i] > row[best]) best = i;
  }
  return best;
}

int run_greedy(ModelRunner& model, std::vector<GreedySequence>& seqs) {
  const int vocab = model.info().vocab_size;
  int steps = 0;
  for (;;) {
    StepBatch batch;
    std::vector<size_t> members;
    for (size_t i = 0; i < seqs.size(); ++i) {
      GreedySequence& s = seqs[i];
      const int have = static_cast<int>(s.tokens.size());
      if (have >= s.final_len) continue;
      StepSequence ss;
      ss.start_pos = s.cached;
      const int pending = have - s.cached;  // prompt tokens not yet in the cache, or 1 to decode
      const int n = (s.prefill_chunk > 0) ? std::min(pending, s.prefill_chunk) : pending;
      ss.tokens.assign(s.tokens.begin() + s.cached, s.tokens.begin() + s.cached + n);
      ss.want_logits = s.cached + n == have;
      ss.block_table = s.block_table;
      batch.seqs.push_back(std::move(ss));
      members.push_back(i);
    }
    if (batch.seqs.empty()) return steps;
    const StepOutput out = model.step(batch);
    ++steps;
    int row = 0;
    for (size_t k = 0; k < members.size(); ++k) {
      GreedySequence& s = seqs[members[k]];
      const StepSequence& ss = batch.seqs[k];
      s.cached += static_cast<int>(ss.tokens.size());
      if (!ss.want_logits) continue;
      if (row >= out.rows) throw std::runtime_error("greedy driver: too few logit rows");
      s.tokens.push_back(argmax(out.logits.data() + static_cast<size_t>(row) * vocab, vocab));
      ++row;
    }
  }
}

std::string runc_stdout(const Tokenizer& tok, const std::vector<int32_t>& seq) {
  std::string out;
  for (size_t i = 1; i < seq.size(); ++i) {
    if (seq[i] == 1) break;  // run.c stops when BOS is sampled
    const std::string piece = tok.decode_piece(seq[i], seq[i - 1]);
    if (piece.empty()) continue;
    if (piece.size() == 1) {
      const unsigned char c = static_cast<unsigned char>(piece[0]);
      if (!(std::isprint(c) || std::isspace(c))) continue;  // safe_printf drops control bytes
    }
    out += piece;
  }
  return out + "\n";
}

std::vector<int32_t> shuffled_blocks(int first, int n, unsigned seed) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  std::iota(ids.begin(), ids.end(), first);
  std::mt19937 rng(seed);
  std::shuffle(ids.begin(), ids.end(), rng);
  return ids;
}

}  // namespace talkserve::llm::test
