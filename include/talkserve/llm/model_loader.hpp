#pragma once
// Creates the resident model behind the ModelRunner contract from a checkpoint on disk.
// Plain C++ types only: callers never see libtorch.

#include <cstdint>
#include <memory>
#include <string>

#include "talkserve/llm/model_runner.hpp"

namespace talkserve::llm {

struct ModelConfig {
  // A llama2.c checkpoint (.bin), a Hugging Face model directory (config.json +
  // model.safetensors or model.safetensors.index.json), or one .safetensors file with
  // config.json beside it.
  std::string path;
  std::string format = "auto";  // auto | llama2c | safetensors  (auto: by extension / dir)
  std::string device = "cpu";   // cpu | cuda | cuda:N  (cuda needs a CUDA build of libtorch)
  std::string dtype = "auto";   // auto | float32 | float16 | bfloat16 (auto: f32 cpu, f16 cuda)
  int block_size = 16;          // tokens per KV block
  int num_blocks = 0;           // KV blocks; 0 = derive from kv_cache_bytes
  std::int64_t kv_cache_bytes = 0;  // 0 with num_blocks 0 = room for 32 full-length sequences,
                                    // at most 512 MiB
  int num_threads = 0;          // intra-op CPU threads; 0 = hardware cores. Process-global in torch.
  int max_seq_len = 0;          // 0 = the checkpoint's context length; else caps it
  std::string served_name;      // empty = derived from the path's file or directory name

  // Throws std::invalid_argument naming the offending key (e.g. "llm.model.block_size").
  void validate() const;
};

// "llama2c" or "safetensors" for `format == "auto"`, by looking at the path.
// Throws std::runtime_error when the path does not exist or cannot be classified.
std::string resolve_model_format(const ModelConfig& config);

// Loads weights, allocates the paged KV cache and returns the runner. Throws
// std::runtime_error (naming the file and the problem) on a missing, truncated or malformed
// checkpoint, and std::invalid_argument on a bad config. Not thread-safe with respect to
// other torch users while loading (it sets torch's global thread count).
std::unique_ptr<ModelRunner> load_model(const ModelConfig& config);

}  // namespace talkserve::llm
