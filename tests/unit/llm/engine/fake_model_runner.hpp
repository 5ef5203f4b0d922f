#pragma once
// A deterministic stand-in for the libtorch model that also audits the paging.
//
// It keeps its own "KV cache": one slot per (block, offset) holding the token written there,
// its position and a rolling hash of the whole context up to it. Every step it checks that the
// block table covers the new tokens, writes them, and — for rows that want logits — reads the
// full context back through the block table, verifying that each slot holds the position it
// should and that the hash chain is unbroken. A paging bug (wrong block, shared block
// overwritten, stale block reused) therefore shows up as a violation or as different output.
//
// The logits of a row are a pseudo-random function of the context hash only, so the greedy
// continuation of a prompt is fixed (reference_greedy()) and independent of the batch.

#include <cmath>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "talkserve/llm/model_runner.hpp"

namespace talkserve::llm::testing {

inline std::uint64_t fake_mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

inline std::uint64_t fake_context_hash(std::uint64_t prev, int32_t token) {
  return fake_mix(prev ^ (static_cast<std::uint64_t>(static_cast<std::uint32_t>(token)) << 1));
}

inline void fake_logits(std::uint64_t ctx, int vocab, float* out) {
  for (int j = 0; j < vocab; ++j)
    out[j] = static_cast<float>(fake_mix(ctx * 31 + static_cast<std::uint64_t>(j)) % 1000) / 250.0f;
}

// The greedy continuation the engine must produce for `prompt` (argmax, lowest id on ties).
inline std::vector<int32_t> reference_greedy(const std::vector<int32_t>& prompt, int n, int vocab) {
  std::uint64_t h = 0;
  for (int32_t t : prompt) h = fake_context_hash(h, t);
  std::vector<int32_t> out;
  std::vector<float> logits(static_cast<std::size_t>(vocab));
  for (int i = 0; i < n; ++i) {
    fake_logits(h, vocab, logits.data());
    int32_t best = 0;
    for (int j = 1; j < vocab; ++j)
      if (logits[static_cast<std::size_t>(j)] > logits[static_cast<std::size_t>(best)]) best = j;
    out.push_back(best);
    h = fake_context_hash(h, best);
  }
  return out;
}

class FakeModelRunner final : public ModelRunner {
 public:
  struct Options {
    int vocab = 64;
    int max_seq_len = 128;
    int block_size = 4;
    int num_blocks = 32;
    int eos_id = -1;  // no EOS unless a test wants one
  };
  explicit FakeModelRunner(Options o) : opt_(o) {
    info_.name = "fake";
    info_.vocab_size = o.vocab;
    info_.max_seq_len = o.max_seq_len;
    info_.eos_id = o.eos_id;
    slots_.resize(static_cast<std::size_t>(o.block_size * o.num_blocks));
  }

  const ModelInfo& info() const override { return info_; }
  int block_size() const override { return opt_.block_size; }
  int num_blocks() const override { return opt_.num_blocks; }

  StepOutput step(const StepBatch& batch) override {
    if (fail_next_step) {
      fail_next_step = false;
      throw std::runtime_error("injected failure");
    }
    steps.push_back(batch);
    StepOutput out;
    for (const StepSequence& s : batch.seqs) {
      const int n = static_cast<int>(s.tokens.size());
      const int end = s.start_pos + n;
      if (n < 1) violate("empty step sequence");
      if (static_cast<int>(s.block_table.size()) * opt_.block_size < end)
        violate("block table does not cover the new tokens");
      for (int32_t b : s.block_table)
        if (b < 0 || b >= opt_.num_blocks) violate("block id out of range");
      for (int i = 0; i < n; ++i) {
        const int pos = s.start_pos + i;
        const int32_t block = s.block_table[static_cast<std::size_t>(pos / opt_.block_size)];
        if (on_write) on_write(block);
        const std::uint64_t prev = pos == 0 ? 0 : read(s.block_table, pos - 1).hash;
        Slot& slot = at(s.block_table, pos);
        slot = Slot{s.tokens[static_cast<std::size_t>(i)], pos,
                    fake_context_hash(prev, s.tokens[static_cast<std::size_t>(i)])};
      }
      if (!s.want_logits) continue;
      // Read the whole context back and check the chain.
      std::uint64_t h = 0;
      for (int pos = 0; pos < end; ++pos) {
        const Slot& slot = read(s.block_table, pos);
        h = fake_context_hash(h, slot.token);
        if (h != slot.hash) violate("context hash chain broken at position " + std::to_string(pos));
      }
      const std::size_t row = out.logits.size();
      out.logits.resize(row + static_cast<std::size_t>(opt_.vocab));
      fake_logits(h, opt_.vocab, out.logits.data() + row);
      ++out.rows;
    }
    return out;
  }

  std::vector<StepBatch> steps;    // every batch received
  std::vector<std::string> violations;
  std::function<void(int32_t block)> on_write;  // e.g. to assert the block is private
  bool fail_next_step = false;

 private:
  struct Slot {
    int32_t token = -1;
    int pos = -1;
    std::uint64_t hash = 0;
  };
  [[noreturn]] void violate(const std::string& what) {
    violations.push_back(what);
    throw std::runtime_error("fake runner: " + what);
  }
  Slot& at(const std::vector<int32_t>& table, int pos) {
    const int32_t block = table[static_cast<std::size_t>(pos / opt_.block_size)];
    return slots_[static_cast<std::size_t>(block * opt_.block_size + pos % opt_.block_size)];
  }
  const Slot& read(const std::vector<int32_t>& table, int pos) {
    const Slot& s = at(table, pos);
    if (s.pos != pos) violate("slot for position " + std::to_string(pos) + " holds position " +
                              std::to_string(s.pos));
    return s;
  }

  Options opt_;
  ModelInfo info_;
  std::vector<Slot> slots_;
};

}  // namespace talkserve::llm::testing
