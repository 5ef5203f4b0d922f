#pragma once
// The wav2vec2 network: weights loaded from model.safetensors and a masked batched forward
// pass. Internal to talkserve_speech_torch (torch headers).

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

// Logits [batch, max_frames, vocab] (float32, CPU) of clips normalised and zero-padded here;
// frames[i] is the number of valid frames of clip i. Run under inference mode by the caller.
torch::Tensor wav2vec2_forward(const Wav2Vec2Weights& w, const Wav2Vec2Config& config,
                               const torch::Device& device,
                               const std::vector<std::span<const float>>& clips,
                               std::vector<std::int64_t>& frames);

}  // namespace talkserve::speech::detail
