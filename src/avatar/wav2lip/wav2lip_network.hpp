#pragma once
// The Wav2Lip generator on libtorch: weights from safetensors with BatchNorm folded in, and the
// batched forward pass. Internal to talkserve_avatar_wav2lip (torch headers).

#include <ATen/core/ivalue.h>  // first: clang (C++20) needs c10::IValue complete in libtorch 1.13's torch.h
#include <torch/torch.h>

#include <string>
#include <vector>

#include "avatar/wav2lip/wav2lip_architecture.hpp"

namespace talkserve::avatar::detail {

// One layer with its BatchNorm folded into the convolution's weight and bias (eval mode:
// y = (conv(x) - mean) / sqrt(var + eps) * gamma + beta is again a convolution).
struct Wav2LipConv {
  torch::Tensor weight, bias;
  Wav2LipLayer spec;
};

struct Wav2LipWeights {
  std::vector<std::vector<Wav2LipConv>> face_encoder;
  std::vector<Wav2LipConv> audio_encoder;
  std::vector<std::vector<Wav2LipConv>> face_decoder;
  std::vector<Wav2LipConv> output_block;
};

// Reads and checks every tensor of wav2lip_architecture(). Throws std::runtime_error naming the
// file and tensor (missing, wrong shape, non-finite values).
Wav2LipWeights load_wav2lip_weights(const std::string& safetensors_path, const torch::Device& device);

// mels [B, 1, 80, 16], faces [B, 6, 96, 96] (float32, on the weights' device) -> [B, 3, 96, 96]
// in (0, 1). Run under inference mode by the caller.
torch::Tensor wav2lip_forward(const Wav2LipWeights& w, const torch::Tensor& mels, const torch::Tensor& faces);

}  // namespace talkserve::avatar::detail
