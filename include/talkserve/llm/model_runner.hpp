#pragma once
// The boundary between the continuous-batching engine (pure C++) and the libtorch model.
// No torch types here: the engine, its scheduler and its tests never include libtorch.
//
// The model owns the paged KV cache storage: for every layer, K and V pools of shape
// [num_blocks, block_size, n_kv_heads, head_dim]. The engine owns the block bookkeeping
// (which sequence holds which physical block) and passes block tables with each step.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace talkserve::llm {

struct ModelInfo {
  std::string name;          // served model id (e.g. "stories260K")
  int vocab_size = 0;
  int max_seq_len = 0;       // context length
  int dim = 0;
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  int bos_id = 1;
  int eos_id = 2;
  std::int64_t kv_cache_bytes = 0;  // memory of the whole paged KV cache (0: not reported)
};

// One sequence's share of a forward step: `num_new_tokens` consecutive tokens starting at
// position `start_pos` (positions [0, start_pos) are already in the KV cache).
struct StepSequence {
  std::vector<int32_t> tokens;       // the new tokens, size num_new_tokens >= 1
  int32_t start_pos = 0;
  std::vector<int32_t> block_table;  // physical block ids, covering start_pos + tokens.size()
  bool want_logits = true;           // false for a prefill chunk that is not the prompt's last
};

struct StepBatch {
  std::vector<StepSequence> seqs;
};

struct StepOutput {
  // Row-major [num rows, vocab_size]: one row per sequence with want_logits, in batch order.
  std::vector<float> logits;
  int rows = 0;
};

// Thread-safety: a ModelRunner is used by the engine thread only.
class ModelRunner {
 public:
  virtual ~ModelRunner() = default;
  virtual const ModelInfo& info() const = 0;
  virtual int block_size() const = 0;
  virtual int num_blocks() const = 0;
  // Writes the new tokens' K/V into their blocks and returns the requested logits.
  // Throws std::runtime_error on failure (the engine fails the step's requests, not the process).
  virtual StepOutput step(const StepBatch& batch) = 0;
};

}  // namespace talkserve::llm
