#pragma once
// The headers of the checkpoint formats, parsed and validated without libtorch: hyper-parameters
// and the llama2.c 7-int32 header, and the safetensors JSON header. Everything a loader later
// allocates or reads is derived from these, so they are checked here completely (and fuzzed,
// fuzz/fuzz_checkpoint_headers.cpp). Internal to src/llm/model.
//
// Thread-safety: pure functions.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace talkserve::llm::detail {

struct RopeScaling {
  std::string type;  // "" (none) | "linear" | "llama3"
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int original_max_position = 8192;
};

struct LlamaHyperParams {
  std::string architecture;  // "llama2c" | "LlamaForCausalLM" | "Qwen2ForCausalLM" | ...
  int dim = 0;
  int hidden_dim = 0;
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  int vocab_size = 0;
  int max_seq_len = 0;
  double rms_eps = 1e-5;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool qkv_bias = false;
  bool tied_embeddings = false;
  int bos_id = 1;
  int eos_id = 2;
};

// Checks hyper-parameter consistency (divisibility, ranges); throws std::runtime_error
// prefixed with `source`.
void check_hyper_params(const LlamaHyperParams& hp, const std::string& source);

// A llama2.c legacy checkpoint as its header describes it.
struct Llama2cLayout {
  LlamaHyperParams hp;
  bool shared_classifier = false;  // no separate wcls tensor at the end
  std::uint64_t rope_floats = 0;   // the two legacy RoPE tables, skipped on load
  std::uint64_t expected_bytes = 0;
};

// Validates the 7-int32 header of a llama2.c legacy checkpoint of `file_size` bytes: the
// hyper-parameters, and that the file holds exactly the tensors they imply (so no tensor read
// can run past the end and no allocation comes from a bad header). Throws std::runtime_error
// naming `path`.
Llama2cLayout parse_llama2c_header(const std::int32_t (&header)[7], std::uint64_t file_size,
                                   const std::string& path);

struct SafetensorsEntry {
  std::string dtype;  // F32 | F16 | BF16
  std::vector<int64_t> shape;
  std::uint64_t begin = 0;  // absolute file offsets
  std::uint64_t end = 0;
};

// Bounds-checked positional read (BinaryFile::read_at, or a buffer in tests): reads exactly n
// bytes at offset into dst or throws std::runtime_error naming `what`.
using ReadAt = std::function<void(std::uint64_t offset, void* dst, std::uint64_t n,
                                  std::string_view what)>;

// Reads and validates the header of a .safetensors file of `file_size` bytes: u64 length,
// JSON object of entries with supported dtypes, plausible shapes and data offsets inside the
// file that match shape and dtype. Throws std::runtime_error "safetensors file <path>: ...".
std::map<std::string, SafetensorsEntry> parse_safetensors_header(std::uint64_t file_size,
                                                                 const ReadAt& read_at,
                                                                 const std::string& path);

}  // namespace talkserve::llm::detail
