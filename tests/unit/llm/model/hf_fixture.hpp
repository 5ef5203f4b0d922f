#pragma once
// Test-side model plumbing written without torch and without the code under test:
// stories260K's weights as plain float arrays in Hugging Face layout, a safetensors writer,
// and a naive single-sequence reference forward pass.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "talkserve/llm/model_runner.hpp"

namespace talkserve::llm::test {

struct DenseTensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

struct DenseModel {
  int dim = 0, hidden = 0, layers = 0, heads = 0, kv_heads = 0, vocab = 0, seq_len = 0;
  double rope_theta = 10000.0;
  double rms_eps = 1e-5;
  bool qkv_bias = false;
  bool tied = true;
  std::map<std::string, DenseTensor> tensors;  // HF names (q/k rows in rotate_half order)
  int head_dim() const { return dim / heads; }
};

// Reads stories260K.bin with its own parser and permutes q/k rows from llama2.c's
// interleaved RoPE pairs to HF's rotate_half halves.
DenseModel stories_as_hf();

// A model of the given shape with random weights (normal, scaled by 1/sqrt(fan-in); norms
// around 1), seeded: for shapes stories260K does not cover.
DenseModel random_model(int dim, int hidden, int layers, int heads, int kv_heads, int vocab, int seq_len,
                        uint32_t seed);

struct WriteOptions {
  std::string architecture = "LlamaForCausalLM";
  std::string dtype = "F32";  // F32 | F16 | BF16
  int shards = 1;             // > 1 writes model-0000k-of-0000n.safetensors + index
};
void write_hf_checkpoint(const std::string& dir, const DenseModel& m, const WriteOptions& opt);

// Raw safetensors bytes from (name -> (dtype, shape, bytes)).
struct RawTensor {
  std::string dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};
std::string safetensors_bytes(const std::map<std::string, RawTensor>& tensors);

// Rounds every weight through the given 16-bit dtype (what a F16/BF16 file would hold).
void round_weights(DenseModel& m, const std::string& dtype);

// Logits after the last token of `tokens`, computed naively in double precision.
std::vector<float> reference_logits(const DenseModel& m, const std::vector<int32_t>& tokens);

// Runs `prompt` as one prefill step and then feeds `continuation` one token per step;
// returns the logits row of every step.
std::vector<std::vector<float>> runner_logits(ModelRunner& model, const std::vector<int32_t>& prompt,
                                              const std::vector<int32_t>& continuation);

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b);

}  // namespace talkserve::llm::test
