#include "avatar/wav2lip/wav2lip_network.hpp"

#include <cmath>
#include <stdexcept>

#include "llm/model/safetensors_file.hpp"

namespace talkserve::avatar::detail {
namespace {

std::string shape_string(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

class TensorReader {
 public:
  explicit TensorReader(const std::string& path) : file_(path) {}

  torch::Tensor get(const Wav2LipTensorSpec& spec) const {
    if (!file_.has(spec.name)) {
      throw std::runtime_error("wav2lip: " + file_.path() + ": missing tensor " + spec.name +
                               " (convert the checkpoint with scripts/convert-wav2lip.py)");
    }
    const std::vector<std::int64_t> want(spec.shape.begin(), spec.shape.end());
    const auto& entry = file_.entries().at(spec.name);
    if (entry.shape != want) {
      throw std::runtime_error("wav2lip: " + file_.path() + ": tensor " + spec.name + " has shape " +
                               shape_string(entry.shape) + ", expected " + shape_string(want));
    }
    torch::Tensor t = file_.read(spec.name).to(torch::kFloat64);
    if (!torch::isfinite(t).all().item<bool>()) {
      throw std::runtime_error("wav2lip: " + file_.path() + ": tensor " + spec.name + " has non-finite values");
    }
    return t;
  }

 private:
  llm::detail::SafetensorsFile file_;
};

// Folding is done in double so that the folded layer matches conv + BatchNorm to float rounding.
Wav2LipConv load_layer(const TensorReader& r, const Wav2LipLayer& spec, const torch::Device& device) {
  const std::vector<Wav2LipTensorSpec> names = wav2lip_tensor_specs(spec);
  torch::Tensor weight = r.get(names[0]);
  torch::Tensor bias = r.get(names[1]);
  if (spec.batch_norm) {
    const torch::Tensor gamma = r.get(names[2]);
    const torch::Tensor beta = r.get(names[3]);
    const torch::Tensor mean = r.get(names[4]);
    const torch::Tensor var = r.get(names[5]);
    if ((var < 0).any().item<bool>()) {
      throw std::runtime_error("wav2lip: tensor " + names[5].name + " has negative variances");
    }
    const torch::Tensor scale = gamma / torch::sqrt(var + kWav2LipBatchNormEps);  // [out]
    // The output channel is dim 0 of a Conv2d weight and dim 1 of a ConvTranspose2d weight.
    weight = spec.transposed ? weight * scale.view({1, -1, 1, 1}) : weight * scale.view({-1, 1, 1, 1});
    bias = (bias - mean) * scale + beta;
  }
  return Wav2LipConv{weight.to(torch::kFloat32).to(device).contiguous(), bias.to(torch::kFloat32).to(device).contiguous(),
                     spec};
}

std::vector<Wav2LipConv> load_layers(const TensorReader& r, const std::vector<Wav2LipLayer>& specs,
                                     const torch::Device& device) {
  std::vector<Wav2LipConv> out;
  out.reserve(specs.size());
  for (const auto& s : specs) out.push_back(load_layer(r, s, device));
  return out;
}

torch::Tensor run(const Wav2LipConv& l, const torch::Tensor& x) {
  const Wav2LipLayer& s = l.spec;
  torch::Tensor y;
  if (s.transposed) {
    y = torch::conv_transpose2d(x, l.weight, l.bias, {s.stride_h, s.stride_w}, {s.padding, s.padding},
                                {s.output_padding, s.output_padding});
  } else {
    y = torch::conv2d(x, l.weight, l.bias, {s.stride_h, s.stride_w}, {s.padding, s.padding});
  }
  if (s.residual) y.add_(x);
  if (s.batch_norm) y.relu_();  // every wrapped layer ends in ReLU; the bare last conv does not
  return y;
}

torch::Tensor run_all(const std::vector<Wav2LipConv>& layers, torch::Tensor x) {
  for (const auto& l : layers) x = run(l, x);
  return x;
}

}  // namespace

Wav2LipWeights load_wav2lip_weights(const std::string& path, const torch::Device& device) {
  const TensorReader r(path);
  const Wav2LipArchitecture& a = wav2lip_architecture();
  Wav2LipWeights w;
  for (const auto& block : a.face_encoder) w.face_encoder.push_back(load_layers(r, block, device));
  w.audio_encoder = load_layers(r, a.audio_encoder, device);
  for (const auto& block : a.face_decoder) w.face_decoder.push_back(load_layers(r, block, device));
  w.output_block = load_layers(r, a.output_block, device);
  return w;
}

torch::Tensor wav2lip_forward(const Wav2LipWeights& w, const torch::Tensor& mels, const torch::Tensor& faces) {
  torch::Tensor x = run_all(w.audio_encoder, mels);  // [B, 512, 1, 1]
  std::vector<torch::Tensor> feats;
  feats.reserve(w.face_encoder.size());
  torch::Tensor f = faces;
  for (const auto& block : w.face_encoder) {
    f = run_all(block, f);
    feats.push_back(f);
  }
  // Each decoder block's output is concatenated with the encoder feature of the same size,
  // deepest first.
  for (const auto& block : w.face_decoder) {
    x = torch::cat({run_all(block, x), feats.back()}, 1);
    feats.pop_back();
  }
  return torch::sigmoid(run_all(w.output_block, x));
}

}  // namespace talkserve::avatar::detail
