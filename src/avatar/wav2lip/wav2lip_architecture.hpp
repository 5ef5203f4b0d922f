#pragma once
// The layer table of the published Wav2Lip generator (models/wav2lip.py and models/conv.py of
// the original repository), with the checkpoint's tensor names. Plain C++: shared by the torch
// loader (wav2lip_network.cpp) and the torch-free random-weight writer (wav2lip_random.cpp), so
// both always agree with each other and with a converted real checkpoint.
//
// Every layer except the last is the original's `Conv2d` or `Conv2dTranspose` wrapper:
//   <prefix>.conv_block.0.{weight,bias}                              nn.Conv2d / nn.ConvTranspose2d
//   <prefix>.conv_block.1.{weight,bias,running_mean,running_var}     nn.BatchNorm2d (eps 1e-5)
// followed by ReLU; a residual layer adds its input before the ReLU. The last layer
// (output_block.1) is a bare nn.Conv2d with <prefix>.{weight,bias}, followed by a sigmoid.
//
// Thread-safety: pure functions over constant data.

#include <string>
#include <vector>

namespace talkserve::avatar::detail {

struct Wav2LipLayer {
  std::string prefix;  // e.g. "face_encoder_blocks.1.0"
  int in = 0, out = 0;
  int kernel = 3;
  int stride_h = 1, stride_w = 1;
  int padding = 0;
  int output_padding = 0;  // transposed layers only
  bool transposed = false;
  bool residual = false;
  bool batch_norm = true;  // false only for output_block.1 (which has no ReLU either)
};

struct Wav2LipArchitecture {
  std::vector<std::vector<Wav2LipLayer>> face_encoder;  // 7 blocks: 96 -> 48 -> 24 -> 12 -> 6 -> 3 -> 1
  std::vector<Wav2LipLayer> audio_encoder;              // [1, 80, 16] -> [512, 1, 1]
  std::vector<std::vector<Wav2LipLayer>> face_decoder;  // 7 blocks, each followed by a skip concat
  std::vector<Wav2LipLayer> output_block;               // 80 -> 32 -> 3, then sigmoid
};

inline constexpr double kWav2LipBatchNormEps = 1e-5;  // nn.BatchNorm2d default

// The one Wav2Lip generator (img_size 96).
const Wav2LipArchitecture& wav2lip_architecture();

// Every tensor name of a layer with its shape, in checkpoint order.
struct Wav2LipTensorSpec {
  std::string name;
  std::vector<long long> shape;
};
std::vector<Wav2LipTensorSpec> wav2lip_tensor_specs(const Wav2LipLayer& layer);
std::vector<Wav2LipTensorSpec> wav2lip_all_tensor_specs();

}  // namespace talkserve::avatar::detail
