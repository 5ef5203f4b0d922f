#pragma once
// The in-memory form of a Llama-family checkpoint, common to every on-disk format.
// Convention: q/k projection rows are in the Hugging Face "rotate_half" order (within each
// head, the first head_dim/2 rows are the real parts of the RoPE pairs, the last half the
// imaginary parts). llama2.c checkpoints interleave the pairs and are permuted on load.
// Tensors are CPU tensors in the on-disk dtype; LlamaModel converts them to the compute
// dtype and device. Internal to src/llm/model (includes torch).

#include <ATen/core/ivalue.h>  // first: clang (C++20) needs c10::IValue complete in libtorch 1.13's torch.h
#include <torch/torch.h>

#include <string>
#include <vector>

#include "llm/model/checkpoint_headers.hpp"  // LlamaHyperParams, check_hyper_params

namespace talkserve::llm::detail {

struct LlamaLayerWeights {
  torch::Tensor attn_norm;   // [dim]
  torch::Tensor wq, wk, wv;  // [n_heads*hd, dim], [n_kv*hd, dim], [n_kv*hd, dim]
  torch::Tensor bq, bk, bv;  // undefined unless qkv_bias
  torch::Tensor wo;          // [dim, n_heads*hd]
  torch::Tensor ffn_norm;    // [dim]
  torch::Tensor w1, w3;      // gate, up: [hidden, dim]
  torch::Tensor w2;          // down: [dim, hidden]
};

struct LlamaWeights {
  LlamaHyperParams hp;
  torch::Tensor embedding;   // [vocab, dim]
  std::vector<LlamaLayerWeights> layers;
  torch::Tensor final_norm;  // [dim]
  torch::Tensor wcls;        // [vocab, dim]; shares storage with embedding when tied
};

// Reads a llama2.c legacy checkpoint. Throws std::runtime_error naming the file.
LlamaWeights load_llama2c_checkpoint(const std::string& path);
// Reads a Hugging Face directory (config.json + safetensors, possibly sharded) or a single
// .safetensors file with config.json beside it. Throws std::runtime_error naming the file.
LlamaWeights load_hf_checkpoint(const std::string& path);

// Interleaved-pair rows -> rotate_half rows, per head ([n_heads*hd, ...] -> same shape).
torch::Tensor interleaved_to_half_rotary(const torch::Tensor& w, int n_heads);

}  // namespace talkserve::llm::detail
