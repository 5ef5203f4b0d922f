#pragma once
// Continuous batching: decides, step by step, which tokens of which sequences go into the
// next forward pass, and owns admission, chunked prefill and preemption.
//
// Each schedule() call:
//   1. gives every running sequence that is decoding one token (in priority, then arrival
//      order);
//   2. continues the prefill of running sequences that are part way through their prompt
//      (chunked prefill: at most max_prefill_chunk tokens per sequence per step);
//   3. admits waiting sequences in priority order (0 first), FIFO within a priority, while
//      fewer than max_num_seqs run and the step's token budget (max_num_batched_tokens) lasts.
// When the KV cache has no block for a running sequence, the lowest-priority, newest running
// sequence is preempted: its blocks are freed and it goes back to waiting, keeping its
// generated tokens, to be recomputed later (prompt + generated tokens re-prefilled). A waiting
// sequence may preempt running sequences of strictly lower priority only. A sequence that
// cannot fit even alone in the cache is reported in `failed` instead of waiting forever.
//
// Thread-safety: none; used by the engine thread only.

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "talkserve/llm/kv_block_manager.hpp"
#include "talkserve/llm/sequence.hpp"

namespace talkserve::llm {

struct SchedulerConfig {
  int max_num_seqs = 64;             // sequences running at once
  int max_num_batched_tokens = 512;  // tokens per forward step (decodes + prefill chunks)
  int max_prefill_chunk = 256;       // prefill tokens of one sequence per step

  std::string validate() const;  // empty when valid, else a message naming the key
};

struct ScheduledSeq {
  Sequence* seq = nullptr;
  int num_tokens = 0;        // tokens [seq->num_computed, seq->num_computed + num_tokens)
  bool want_logits = false;  // the chunk reaches the last token: sample after this step
};

struct SchedulerOutput {
  std::vector<ScheduledSeq> scheduled;  // decodes first, then prefill chunks
  std::vector<SeqId> preempted;         // preempted during this call
  struct Failure {
    SeqId id;
    std::string message;
  };
  std::vector<Failure> failed;  // removed; their blocks are freed
  int num_batched_tokens = 0;
  bool empty() const { return scheduled.empty(); }
};

class ContinuousBatchScheduler {
 public:
  ContinuousBatchScheduler(SchedulerConfig config, KvBlockManager& blocks);

  // Takes ownership; the sequence waits for admission.
  void add(std::unique_ptr<Sequence> seq);
  SchedulerOutput schedule();
  // After the forward pass of `out` succeeded: advances num_computed and commits full blocks.
  void on_step_done(const SchedulerOutput& out);
  // Appends a sampled token to a running sequence.
  void append_token(SeqId id, int32_t token);
  // Removes a sequence (finished, cancelled or failed) and frees its blocks at once.
  void remove(SeqId id);

  Sequence* find(SeqId id);
  bool has_work() const { return !running_.empty() || !waiting_.empty(); }
  int num_running() const { return static_cast<int>(running_.size()); }
  int num_waiting() const { return static_cast<int>(waiting_.size()); }
  // Waiting sequences in admission order (priority, then arrival).
  const std::vector<Sequence*>& waiting() const { return waiting_; }
  std::uint64_t num_preemptions() const { return num_preemptions_; }
  const SchedulerConfig& config() const { return config_; }
  KvBlockManager& blocks() { return blocks_; }

 private:
  // Grows `seq` to `num_tokens` slots, preempting running sequences (of priority >
  // min_victim_priority - 1) from the lowest-priority newest one while blocks are short.
  // Returns false when it could not (the caller decides what that means).
  bool grow_or_preempt(Sequence& seq, int num_tokens, int min_victim_priority,
                       SchedulerOutput& out);
  Sequence* pick_victim(int min_victim_priority, const Sequence* exclude) const;
  void preempt(Sequence& victim, SchedulerOutput& out);
  void fail(Sequence& seq, std::string message, SchedulerOutput& out);
  void insert_waiting(Sequence* seq);
  void insert_running(Sequence* seq);
  void erase_from(std::vector<Sequence*>& v, const Sequence* seq);

  SchedulerConfig config_;
  KvBlockManager& blocks_;
  std::unordered_map<SeqId, std::unique_ptr<Sequence>> seqs_;
  std::vector<Sequence*> running_;  // sorted by (priority, arrival)
  std::vector<Sequence*> waiting_;  // sorted by (priority, arrival)
  std::uint64_t num_preemptions_ = 0;
};

}  // namespace talkserve::llm
