#pragma once
// The wav2vec2 network: weights loaded from model.safetensors and a batched forward pass. Internal to talkserve_speech_torch (torch headers).

#include <ATen/core/ivalue.h>  // first: clang (C++20) needs c10::IValue complete in libtorch 1.13's torch.h
#include <torch/torch.h>

#include <span>
#include <string>
#include <vector>

#include "speech/torch/wav2vec2_config.hpp"

namespace talkserve::speech::detail {

struct Wav2Vec2ConvLayer {
  torch::Tensor weight, bias;            // bias undefined when !conv_bias
  torch::Tensor norm_weight, norm_bias;  // undefined when the layer has no norm
  int stride = 1;
};

struct Wav2Vec2EncoderLayer {
  torch::Tensor qkv_weight, qkv_bias;  // q, k, v projections stacked: [3H, H]
  torch::Tensor out_weight, out_bias;
  torch::Tensor ln_weight, ln_bias;
  torch::Tensor ff_in_weight, ff_in_bias, ff_out_weight, ff_out_bias;
  torch::Tensor final_ln_weight, final_ln_bias;
};

struct Wav2Vec2Weights {
  std::vector<Wav2Vec2ConvLayer> conv;
  torch::Tensor proj_ln_weight, proj_ln_bias;  // undefined when !feat_proj_layer_norm
  torch::Tensor proj_weight, proj_bias;
  torch::Tensor pos_conv_weight, pos_conv_bias;  // weight norm already applied
  torch::Tensor enc_ln_weight, enc_ln_bias;
  std::vector<Wav2Vec2EncoderLayer> layers;
  torch::Tensor lm_weight, lm_bias;
};

// Reads and checks every tensor (names as in transformers' Wav2Vec2ForCTC), converts to
// float32 and moves to `device`. Throws std::runtime_error naming the file and tensor.
Wav2Vec2Weights load_wav2vec2_weights(const std::string& safetensors_path, const Wav2Vec2Config& config,
                                      const torch::Device& device);

// CTC logits of a batch of clips, packed without padding: [sum of frames, vocab] (float32, CPU),
// clip i's frames[i] rows after those of clips 0 .. i-1. The conv feature encoder and the
// positional conv run per clip; the transformer's per-frame GEMMs run on all clips' frames at
// once and attention within each clip, so a clip's logits do not depend on its batch-mates.
// Run under inference mode by the caller.
torch::Tensor wav2vec2_forward(const Wav2Vec2Weights& w, const Wav2Vec2Config& config,
                               const torch::Device& device,
                               const std::vector<std::span<const float>>& clips,
                               std::vector<std::int64_t>& frames);

}  // namespace talkserve::speech::detail
