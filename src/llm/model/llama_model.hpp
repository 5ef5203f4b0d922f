#pragma once
// The libtorch Llama-family ModelRunner (Llama 1/2/3, llama2.c, Qwen2, Mistral-style GQA).

#include <ATen/core/ivalue.h>  // first: clang (C++20) needs c10::IValue complete in libtorch 1.13's torch.h
#include <torch/torch.h>

#include <memory>
#include <string>

#include "llm/model/llama_weights.hpp"
#include "talkserve/llm/model_runner.hpp"

namespace talkserve::llm::detail {

struct RunnerOptions {
  std::string name;
  torch::Device device = torch::kCPU;
  torch::ScalarType dtype = torch::kFloat32;
  int block_size = 16;
  int num_blocks = 0;
  int max_seq_len = 0;  // 0 = hp.max_seq_len
};

// Takes the weights (moved: their CPU copies are released as they are converted).
std::unique_ptr<ModelRunner> make_llama_model(LlamaWeights&& weights, const RunnerOptions& options);

}  // namespace talkserve::llm::detail
