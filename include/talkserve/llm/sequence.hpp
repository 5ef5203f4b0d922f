#pragma once
// The scheduler's view of one generation request: its tokens and how many are in the KV cache.

#include <cstdint>
#include <vector>

#include "talkserve/llm/kv_block_manager.hpp"

namespace talkserve::llm {

// Priority tiers: lower value is served first and preempted last.
enum class Priority : int { vip = 0, standard = 1, batch = 2 };

enum class SeqStatus { waiting, running, finished };

struct Sequence {
  SeqId id = 0;
  int priority = static_cast<int>(Priority::standard);
  std::uint64_t arrival = 0;      // submission order; FIFO within a priority, "newest" = largest
  std::vector<int32_t> tokens;    // the prompt followed by the generated tokens
  int num_prompt_tokens = 0;
  // Tokens whose K/V are in the cache. A decoding sequence has tokens.size() - 1 computed
  // (the last sampled token is fed in the next step). After preemption this drops to 0 and
  // prompt + generated tokens are recomputed.
  int num_computed = 0;
  SeqStatus status = SeqStatus::waiting;
  int num_preemptions = 0;
  bool prefill_done_once = false;  // the whole prompt was computed at least once

  int num_uncomputed() const { return static_cast<int>(tokens.size()) - num_computed; }
  int num_generated() const { return static_cast<int>(tokens.size()) - num_prompt_tokens; }
};

}  // namespace talkserve::llm
