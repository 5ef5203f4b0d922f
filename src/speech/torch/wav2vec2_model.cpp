#include "speech/torch/wav2vec2_model.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "llm/model/safetensors_file.hpp"

namespace talkserve::speech::detail {
namespace {

constexpr double kConvNormEps = 1e-5;       // nn.GroupNorm / nn.LayerNorm defaults in the conv stack
constexpr double kInputNormEps = 1e-7;      // Wav2Vec2FeatureExtractor zero_mean_unit_var_norm
constexpr float kMaskedScore = -1e9f;       // additive attention bias of padded keys

std::string shape_string(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

class TensorLoader {
 public:
  TensorLoader(const std::string& path, const torch::Device& device) : file_(path), device_(device) {}

  bool has(const std::string& name) const { return file_.has(name); }

  torch::Tensor get(const std::string& name, const std::vector<std::int64_t>& shape) const {
    if (!file_.has(name)) {
      throw std::runtime_error("wav2vec2: " + file_.path() + ": missing tensor " + name);
    }
    const auto& entry = file_.entries().at(name);
    if (entry.shape != shape) {
      throw std::runtime_error("wav2vec2: " + file_.path() + ": tensor " + name + " has shape " +
                               shape_string(entry.shape) + ", expected " + shape_string(shape));
    }
    return file_.read(name).to(torch::kFloat32).to(device_).contiguous();
  }

  // A tensor whose shape is checked by the caller.
  torch::Tensor get_any_shape(const std::string& name) const {
    if (!file_.has(name)) {
      throw std::runtime_error("wav2vec2: " + file_.path() + ": missing tensor " + name);
    }
    return file_.read(name).to(torch::kFloat32);
  }

  const std::string& path() const { return file_.path(); }

 private:
  llm::detail::SafetensorsFile file_;
  torch::Device device_;
};

// weight = g * v / ||v||, the norm taken over every dimension where g has size 1 (dim=2 in
// transformers: g is [1, 1, K]).
torch::Tensor apply_weight_norm(const TensorLoader& t, const std::string& g_name, const std::string& v_name,
                                const std::vector<std::int64_t>& v_shape, const torch::Device& device) {
  torch::Tensor v = t.get(v_name, v_shape).to(torch::kCPU);
  torch::Tensor g = t.get_any_shape(g_name);
  if (g.dim() != v.dim()) {
    throw std::runtime_error("wav2vec2: " + t.path() + ": tensor " + g_name + " has rank " +
                             std::to_string(g.dim()) + ", expected " + std::to_string(v.dim()));
  }
  std::vector<std::int64_t> reduce;
  for (std::int64_t d = 0; d < v.dim(); ++d) {
    if (g.size(d) == 1) {
      reduce.push_back(d);
    } else if (g.size(d) != v.size(d)) {
      throw std::runtime_error("wav2vec2: " + t.path() + ": tensor " + g_name + " has shape " +
                               shape_string(g.sizes().vec()) + ", which does not fit " + v_name);
    }
  }
  torch::Tensor norm = v.pow(2).sum(reduce, /*keepdim=*/true).sqrt();
  return (g * v / norm).to(device).contiguous();
}

}  // namespace

Wav2Vec2Weights load_wav2vec2_weights(const std::string& path, const Wav2Vec2Config& c,
                                      const torch::Device& device) {
  TensorLoader t(path, device);
  Wav2Vec2Weights w;
  const std::int64_t H = c.hidden_size;
  const std::int64_t I = c.intermediate_size;
  const std::string fe = "wav2vec2.feature_extractor.conv_layers.";
  std::int64_t in = 1;
  for (std::size_t i = 0; i < c.conv_dim.size(); ++i) {
    const std::int64_t out = c.conv_dim[i];
    const std::string p = fe + std::to_string(i) + ".";
    Wav2Vec2ConvLayer layer;
    layer.weight = t.get(p + "conv.weight", {out, in, c.conv_kernel[i]});
    if (c.conv_bias) layer.bias = t.get(p + "conv.bias", {out});
    if (c.feat_extract_norm == "layer" || i == 0) {
      layer.norm_weight = t.get(p + "layer_norm.weight", {out});
      layer.norm_bias = t.get(p + "layer_norm.bias", {out});
    }
    layer.stride = c.conv_stride[i];
    w.conv.push_back(std::move(layer));
    in = out;
  }
  const std::string fp = "wav2vec2.feature_projection.";
  if (c.feat_proj_layer_norm) {
    w.proj_ln_weight = t.get(fp + "layer_norm.weight", {in});
    w.proj_ln_bias = t.get(fp + "layer_norm.bias", {in});
  }
  w.proj_weight = t.get(fp + "projection.weight", {H, in});
  w.proj_bias = t.get(fp + "projection.bias", {H});

  const std::string enc = "wav2vec2.encoder.";
  const std::string pc = enc + "pos_conv_embed.conv.";
  const std::vector<std::int64_t> pos_shape = {H, H / c.num_conv_pos_embedding_groups, c.num_conv_pos_embeddings};
  if (t.has(pc + "weight_g") || t.has(pc + "weight_v")) {
    w.pos_conv_weight = apply_weight_norm(t, pc + "weight_g", pc + "weight_v", pos_shape, device);
  } else if (t.has(pc + "parametrizations.weight.original0")) {
    w.pos_conv_weight = apply_weight_norm(t, pc + "parametrizations.weight.original0",
                                          pc + "parametrizations.weight.original1", pos_shape, device);
  } else {
    w.pos_conv_weight = t.get(pc + "weight", pos_shape);  // weight norm already folded in
  }
  w.pos_conv_bias = t.get(pc + "bias", {H});
  w.enc_ln_weight = t.get(enc + "layer_norm.weight", {H});
  w.enc_ln_bias = t.get(enc + "layer_norm.bias", {H});
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = enc + "layers." + std::to_string(l) + ".";
    Wav2Vec2EncoderLayer layer;
    const std::string a = p + "attention.";
    layer.qkv_weight = torch::cat({t.get(a + "q_proj.weight", {H, H}), t.get(a + "k_proj.weight", {H, H}),
                                   t.get(a + "v_proj.weight", {H, H})}, 0).contiguous();
    layer.qkv_bias = torch::cat({t.get(a + "q_proj.bias", {H}), t.get(a + "k_proj.bias", {H}),
                                 t.get(a + "v_proj.bias", {H})}, 0).contiguous();
    layer.out_weight = t.get(a + "out_proj.weight", {H, H});
    layer.out_bias = t.get(a + "out_proj.bias", {H});
    layer.ln_weight = t.get(p + "layer_norm.weight", {H});
    layer.ln_bias = t.get(p + "layer_norm.bias", {H});
    layer.ff_in_weight = t.get(p + "feed_forward.intermediate_dense.weight", {I, H});
    layer.ff_in_bias = t.get(p + "feed_forward.intermediate_dense.bias", {I});
    layer.ff_out_weight = t.get(p + "feed_forward.output_dense.weight", {H, I});
    layer.ff_out_bias = t.get(p + "feed_forward.output_dense.bias", {H});
    layer.final_ln_weight = t.get(p + "final_layer_norm.weight", {H});
    layer.final_ln_bias = t.get(p + "final_layer_norm.bias", {H});
    w.layers.push_back(std::move(layer));
  }
  w.lm_weight = t.get("lm_head.weight", {c.vocab_size, H});
  w.lm_bias = t.get("lm_head.bias", {c.vocab_size});
  return w;
}

namespace {

torch::Tensor self_attention(const torch::Tensor& h, const Wav2Vec2EncoderLayer& layer, int heads,
                             const torch::Tensor& key_bias) {
  const std::int64_t B = h.size(0), T = h.size(1), H = h.size(2), d = H / heads;
  torch::Tensor qkv = torch::linear(h, layer.qkv_weight, layer.qkv_bias)
                          .view({B, T, 3, heads, d})
                          .permute({2, 0, 3, 1, 4});  // [3, B, heads, T, d]
  torch::Tensor q = qkv[0] * (1.0 / std::sqrt(static_cast<double>(d)));
  torch::Tensor scores = torch::matmul(q, qkv[1].transpose(-2, -1)) + key_bias;  // [B, heads, T, T]
  torch::Tensor ctx = torch::matmul(torch::softmax(scores, -1), qkv[2]);
  return torch::linear(ctx.transpose(1, 2).reshape({B, T, H}), layer.out_weight, layer.out_bias);
}

torch::Tensor feed_forward(const torch::Tensor& h, const Wav2Vec2EncoderLayer& layer) {
  return torch::linear(torch::gelu(torch::linear(h, layer.ff_in_weight, layer.ff_in_bias)),
                       layer.ff_out_weight, layer.ff_out_bias);
}

}  // namespace

torch::Tensor wav2vec2_forward(const Wav2Vec2Weights& w, const Wav2Vec2Config& c, const torch::Device& device,
                               const std::vector<std::span<const float>>& clips,
                               std::vector<std::int64_t>& frames) {
  const auto B = static_cast<std::int64_t>(clips.size());
  std::size_t max_len = 0;
  for (const auto& clip : clips) max_len = std::max(max_len, clip.size());
  frames.assign(clips.size(), 0);
  for (std::size_t b = 0; b < clips.size(); ++b) {
    frames[b] = static_cast<std::int64_t>(conv_output_length(c, clips[b].size()));
  }
  const auto T = static_cast<std::int64_t>(conv_output_length(c, max_len));
  if (B == 0 || T == 0) return torch::zeros({B, 0, c.vocab_size});

  // Zero mean, unit variance per clip over its own samples; padding stays 0.
  torch::Tensor audio = torch::zeros({B, 1, static_cast<std::int64_t>(max_len)});
  float* dst = audio.data_ptr<float>();
  for (std::size_t b = 0; b < clips.size(); ++b) {
    const auto& clip = clips[b];
    if (clip.empty()) continue;
    double sum = 0, sum2 = 0;
    for (float v : clip) sum += v;
    const double mean = sum / static_cast<double>(clip.size());
    for (float v : clip) sum2 += (v - mean) * (v - mean);
    const double scale = 1.0 / std::sqrt(sum2 / static_cast<double>(clip.size()) + kInputNormEps);
    float* row = dst + b * max_len;
    for (std::size_t i = 0; i < clip.size(); ++i) row[i] = static_cast<float>((clip[i] - mean) * scale);
  }
  torch::Tensor x = audio.to(device);

  // Feature encoder. A valid frame of layer i only reads valid frames of layer i - 1, so the
  // padding matters only where statistics are taken over time: the first layer's GroupNorm.
  std::vector<std::int64_t> len(clips.size());
  for (std::size_t b = 0; b < clips.size(); ++b) len[b] = static_cast<std::int64_t>(clips[b].size());
  for (std::size_t i = 0; i < w.conv.size(); ++i) {
    const auto& layer = w.conv[i];
    const std::int64_t k = c.conv_kernel[i];
    if (x.size(1) == 1) {
      // One input channel (the waveform): libtorch's conv1d is ~10x slower here than the
      // equivalent frames x kernel matmul.
      torch::Tensor frames_k = x.squeeze(1).unfold(1, k, layer.stride);  // [B, T0, k]
      x = torch::matmul(frames_k, layer.weight.view({layer.weight.size(0), k}).t());  // [B, T0, C]
      if (layer.bias.defined()) x = x + layer.bias;
      x = x.transpose(1, 2);
    } else {
      x = torch::conv1d(x, layer.weight, layer.bias, {layer.stride});
    }
    for (auto& n : len) n = n >= k ? (n - k) / layer.stride + 1 : 0;
    const std::int64_t C = x.size(1);
    if (c.feat_extract_norm == "group" && i == 0) {
      // GroupNorm(C groups, C channels) = per-channel normalisation over time; masked here.
      torch::Tensor n = torch::tensor(len, torch::dtype(torch::kInt64)).to(device);
      torch::Tensor mask = (torch::arange(x.size(2), n.options()).unsqueeze(0) < n.unsqueeze(1))
                               .to(torch::kFloat32)
                               .unsqueeze(1);  // [B, 1, T0]
      torch::Tensor count = n.clamp_min(1).to(torch::kFloat32).view({B, 1, 1});
      torch::Tensor mean = (x * mask).sum(2, true) / count;
      torch::Tensor var = ((x - mean) * mask).pow(2).sum(2, true) / count;
      x = (x - mean) * torch::rsqrt(var + kConvNormEps) * layer.norm_weight.view({1, C, 1}) +
          layer.norm_bias.view({1, C, 1});
    } else if (c.feat_extract_norm == "layer") {
      x = torch::layer_norm(x.transpose(1, 2), {C}, layer.norm_weight, layer.norm_bias, kConvNormEps)
              .transpose(1, 2);
    }
    x = torch::gelu(x);
  }

  torch::Tensor h = x.transpose(1, 2);  // [B, T, C]
  if (w.proj_ln_weight.defined()) {
    h = torch::layer_norm(h, {h.size(2)}, w.proj_ln_weight, w.proj_ln_bias, c.layer_norm_eps);
  }
  h = torch::linear(h, w.proj_weight, w.proj_bias);
  const std::int64_t H = h.size(2);

  torch::Tensor n = torch::tensor(frames, torch::dtype(torch::kInt64)).to(device);
  torch::Tensor valid = (torch::arange(T, n.options()).unsqueeze(0) < n.unsqueeze(1)).to(torch::kFloat32);
  h = h * valid.unsqueeze(-1);  // padded frames are zeros, as beyond the end of a lone clip
  torch::Tensor pos = torch::conv1d(h.transpose(1, 2), w.pos_conv_weight, w.pos_conv_bias, {1},
                                    {c.num_conv_pos_embeddings / 2}, {1}, c.num_conv_pos_embedding_groups);
  pos = torch::gelu(pos.narrow(2, 0, T)).transpose(1, 2);  // even kernel: drop the extra last frame
  h = h + pos;
  if (!c.do_stable_layer_norm) h = torch::layer_norm(h, {H}, w.enc_ln_weight, w.enc_ln_bias, c.layer_norm_eps);

  torch::Tensor key_bias = ((1.0f - valid) * kMaskedScore).view({B, 1, 1, T});
  for (const auto& layer : w.layers) {
    if (c.do_stable_layer_norm) {
      h = h + self_attention(torch::layer_norm(h, {H}, layer.ln_weight, layer.ln_bias, c.layer_norm_eps), layer,
                             c.num_attention_heads, key_bias);
      h = h + feed_forward(torch::layer_norm(h, {H}, layer.final_ln_weight, layer.final_ln_bias, c.layer_norm_eps),
                           layer);
    } else {
      h = torch::layer_norm(h + self_attention(h, layer, c.num_attention_heads, key_bias), {H}, layer.ln_weight,
                            layer.ln_bias, c.layer_norm_eps);
      h = torch::layer_norm(h + feed_forward(h, layer), {H}, layer.final_ln_weight, layer.final_ln_bias,
                            c.layer_norm_eps);
    }
  }
  if (c.do_stable_layer_norm) h = torch::layer_norm(h, {H}, w.enc_ln_weight, w.enc_ln_bias, c.layer_norm_eps);
  return torch::linear(h, w.lm_weight, w.lm_bias).to(torch::kCPU).contiguous();
}

}  // namespace talkserve::speech::detail
