#include "speech/torch/wav2vec2_model.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "llm/model/safetensors_file.hpp"

namespace talkserve::speech::detail {
namespace {

constexpr double kConvNormEps = 1e-5;       // nn.GroupNorm / nn.LayerNorm defaults in the conv stack
constexpr double kInputNormEps = 1e-7;      // Wav2Vec2FeatureExtractor zero_mean_unit_var_norm

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

// Zero mean, unit variance over the clip's samples (Wav2Vec2FeatureExtractor).
torch::Tensor normalized_audio(std::span<const float> clip) {
  torch::Tensor audio = torch::empty({static_cast<std::int64_t>(clip.size())});
  double sum = 0, sum2 = 0;
  for (float v : clip) sum += v;
  const double mean = sum / static_cast<double>(clip.size());
  for (float v : clip) sum2 += (v - mean) * (v - mean);
  const double scale = 1.0 / std::sqrt(sum2 / static_cast<double>(clip.size()) + kInputNormEps);
  float* dst = audio.data_ptr<float>();
  for (std::size_t i = 0; i < clip.size(); ++i) dst[i] = static_cast<float>((clip[i] - mean) * scale);
  return audio;
}

// The first conv layer (one input channel) of one clip as a frames x kernel GEMM: libtorch's
// conv1d is ~10x slower here. With "group" norm, GroupNorm(C, C) normalises each output channel
// over time; since a channel is a linear function of the input frame, its mean and variance
// follow from the frames' mean and covariance (k x k, in double), so the norm folds into the
// GEMM's weight and bias and the layer's big output ([C, samples / 5]) is written once, not
// re-read twice by a separate norm.
torch::Tensor first_conv_layer(const Wav2Vec2ConvLayer& layer, const Wav2Vec2Config& c, const torch::Tensor& audio) {
  const std::int64_t k = c.conv_kernel[0];
  const std::int64_t C = layer.weight.size(0);
  torch::Tensor frames = audio.unfold(0, k, layer.stride).contiguous();  // [T0, k]
  torch::Tensor weight = layer.weight.view({C, k});
  torch::Tensor bias = layer.bias.defined() ? layer.bias : torch::zeros({C}, weight.options());
  if (c.feat_extract_norm == "group") {
    torch::Tensor f = frames.to(torch::kFloat64);
    torch::Tensor mu = f.mean(0);                                               // [k]
    torch::Tensor centered = f - mu;
    torch::Tensor cov = torch::matmul(centered.t(), centered) / static_cast<double>(f.size(0));  // [k, k]
    torch::Tensor w64 = weight.to(torch::kFloat64);
    torch::Tensor var = (torch::matmul(w64, cov) * w64).sum(1);                 // [C]
    torch::Tensor gain = torch::rsqrt(var + kConvNormEps) * layer.norm_weight.to(torch::kFloat64);
    // (W f + b - (W mu + b)) * gain + beta
    torch::Tensor folded_bias = layer.norm_bias.to(torch::kFloat64) - gain * torch::matmul(w64, mu);
    weight = (w64 * gain.unsqueeze(1)).to(torch::kFloat32);
    bias = folded_bias.to(torch::kFloat32);
  }
  torch::Tensor x = torch::addmm(bias.unsqueeze(1), weight, frames.t());  // [C, T0]
  if (c.feat_extract_norm == "layer") {
    x = torch::layer_norm(x.t(), {C}, layer.norm_weight, layer.norm_bias, kConvNormEps).t();
  }
  return torch::gelu_(x);
}

// The convolutional feature encoder of one clip: [frames, conv_dim.back()]. Run per clip: its
// cost is linear in the clip's length, so batching gains nothing here, while a padded batch
// would compute on the padding and hold [B, 512, samples / 5] intermediates (hundreds of MB).
torch::Tensor feature_encoder(const Wav2Vec2Weights& w, const Wav2Vec2Config& c, const torch::Tensor& audio) {
  torch::Tensor x = first_conv_layer(w.conv[0], c, audio).unsqueeze(0);  // [1, C, T0]
  for (std::size_t i = 1; i < w.conv.size(); ++i) {
    const auto& layer = w.conv[i];
    x = torch::conv1d(x, layer.weight, layer.bias, {layer.stride});
    if (c.feat_extract_norm == "layer") {
      x = torch::layer_norm(x.transpose(1, 2), {x.size(1)}, layer.norm_weight, layer.norm_bias, kConvNormEps)
              .transpose(1, 2);
    }
    torch::gelu_(x);
  }
  return x.squeeze(0).t();  // [T, C]
}

// Self-attention over the packed frames of all clips ([N, H], clip b at rows offsets[b] ..
// offsets[b] + frames[b]). Projections run on all frames at once; scores only within a clip,
// so no clip sees another's frames and no padding or mask is needed.
torch::Tensor self_attention(const torch::Tensor& h, const Wav2Vec2EncoderLayer& layer, int heads,
                             const std::vector<std::int64_t>& offsets, const std::vector<std::int64_t>& frames) {
  const std::int64_t N = h.size(0), H = h.size(1), d = H / heads;
  torch::Tensor qkv = torch::linear(h, layer.qkv_weight, layer.qkv_bias);  // [N, 3H]
  qkv.narrow(1, 0, H).mul_(1.0 / std::sqrt(static_cast<double>(d)));
  torch::Tensor ctx = torch::empty({N, H}, h.options());
  for (std::size_t b = 0; b < frames.size(); ++b) {
    const std::int64_t T = frames[b];
    if (T == 0) continue;
    torch::Tensor clip = qkv.narrow(0, offsets[b], T).view({T, 3, heads, d}).permute({1, 2, 0, 3});  // [3, heads, T, d]
    torch::Tensor probs = torch::softmax(torch::bmm(clip[0], clip[1].transpose(1, 2)), -1);       // [heads, T, T]
    ctx.narrow(0, offsets[b], T).view({T, heads, d}).copy_(torch::bmm(probs, clip[2]).transpose(0, 1));
  }
  return torch::linear(ctx, layer.out_weight, layer.out_bias);
}

torch::Tensor feed_forward(const torch::Tensor& h, const Wav2Vec2EncoderLayer& layer) {
  torch::Tensor x = torch::linear(h, layer.ff_in_weight, layer.ff_in_bias);
  return torch::linear(torch::gelu_(x), layer.ff_out_weight, layer.ff_out_bias);
}

}  // namespace

torch::Tensor wav2vec2_forward(const Wav2Vec2Weights& w, const Wav2Vec2Config& c, const torch::Device& device,
                               const std::vector<std::span<const float>>& clips,
                               std::vector<std::int64_t>& frames) {
  frames.assign(clips.size(), 0);
  std::vector<std::int64_t> offsets(clips.size(), 0);
  std::int64_t N = 0;
  for (std::size_t b = 0; b < clips.size(); ++b) {
    frames[b] = static_cast<std::int64_t>(conv_output_length(c, clips[b].size()));
    offsets[b] = N;
    N += frames[b];
  }
  if (N == 0) return torch::zeros({0, c.vocab_size});

  std::vector<torch::Tensor> features;
  for (std::size_t b = 0; b < clips.size(); ++b) {
    if (frames[b] > 0) features.push_back(feature_encoder(w, c, normalized_audio(clips[b]).to(device)));
  }
  torch::Tensor h = features.size() == 1 ? features[0] : torch::cat(features, 0);  // [N, C], clips packed
  features.clear();
  if (w.proj_ln_weight.defined()) {
    h = torch::layer_norm(h, {h.size(1)}, w.proj_ln_weight, w.proj_ln_bias, c.layer_norm_eps);
  }
  h = torch::linear(h, w.proj_weight, w.proj_bias);  // [N, H]
  const std::int64_t H = h.size(1);

  // Positional conv per clip, zero-padded at the clip's own ends as when it runs alone.
  const std::int64_t pad = c.num_conv_pos_embeddings / 2;
  for (std::size_t b = 0; b < clips.size(); ++b) {
    const std::int64_t T = frames[b];
    if (T == 0) continue;
    torch::Tensor clip = h.narrow(0, offsets[b], T);
    torch::Tensor pos = torch::conv1d(clip.t().unsqueeze(0), w.pos_conv_weight, w.pos_conv_bias, {1}, {pad}, {1},
                                      c.num_conv_pos_embedding_groups);
    clip.add_(torch::gelu_(pos).squeeze(0).narrow(1, 0, T).t());  // even kernel: drop the extra last frame
  }
  if (!c.do_stable_layer_norm) h = torch::layer_norm(h, {H}, w.enc_ln_weight, w.enc_ln_bias, c.layer_norm_eps);

  for (const auto& layer : w.layers) {
    if (c.do_stable_layer_norm) {
      h = h + self_attention(torch::layer_norm(h, {H}, layer.ln_weight, layer.ln_bias, c.layer_norm_eps), layer,
                             c.num_attention_heads, offsets, frames);
      h = h + feed_forward(torch::layer_norm(h, {H}, layer.final_ln_weight, layer.final_ln_bias, c.layer_norm_eps),
                           layer);
    } else {
      h = torch::layer_norm(h + self_attention(h, layer, c.num_attention_heads, offsets, frames), {H},
                            layer.ln_weight, layer.ln_bias, c.layer_norm_eps);
      h = torch::layer_norm(h + feed_forward(h, layer), {H}, layer.final_ln_weight, layer.final_ln_bias,
                            c.layer_norm_eps);
    }
  }
  if (c.do_stable_layer_norm) h = torch::layer_norm(h, {H}, w.enc_ln_weight, w.enc_ln_bias, c.layer_norm_eps);
  return torch::linear(h, w.lm_weight, w.lm_bias).to(torch::kCPU).contiguous();
}

}  // namespace talkserve::speech::detail
