#include "speech/torch/whisper_model.hpp"

#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "llm/model/parallel_matmul.hpp"
#include "llm/model/safetensors_file.hpp"
#include "speech/torch/whisper_cpu.hpp"

namespace talkserve::speech::detail {
namespace {

using torch::indexing::Slice;

std::string shape_string(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

class TensorLoader {
 public:
  TensorLoader(const std::string& path, torch::Device device) : file_(path), device_(device) {}

  torch::Tensor get(const std::string& name, const std::vector<std::int64_t>& shape) const {
    if (!file_.has(name)) throw std::runtime_error("whisper: " + file_.path() + ": missing tensor " + name);
    const auto& entry = file_.entries().at(name);
    if (entry.shape != shape) {
      throw std::runtime_error("whisper: " + file_.path() + ": tensor " + name + " has shape " +
                               shape_string(entry.shape) + ", expected " + shape_string(shape));
    }
    return file_.read(name).to(torch::kFloat32).to(device_).contiguous();
  }

 private:
  llm::detail::SafetensorsFile file_;
  torch::Device device_;
};

WhisperAttentionWeights load_attention(const TensorLoader& t, const std::string& p, std::int64_t d) {
  WhisperAttentionWeights a;
  a.q_w = t.get(p + "q_proj.weight", {d, d});
  a.q_b = t.get(p + "q_proj.bias", {d});
  a.k_w = t.get(p + "k_proj.weight", {d, d});
  a.v_w = t.get(p + "v_proj.weight", {d, d});
  a.v_b = t.get(p + "v_proj.bias", {d});
  a.o_w = t.get(p + "out_proj.weight", {d, d});
  a.o_b = t.get(p + "out_proj.bias", {d});
  return a;
}

WhisperLayerWeights load_layer(const TensorLoader& t, const std::string& p, std::int64_t d,
                               std::int64_t ffn, bool decoder) {
  WhisperLayerWeights l;
  l.ln1_w = t.get(p + "self_attn_layer_norm.weight", {d});
  l.ln1_b = t.get(p + "self_attn_layer_norm.bias", {d});
  l.self_attn = load_attention(t, p + "self_attn.", d);
  if (decoder) {
    l.ln_cross_w = t.get(p + "encoder_attn_layer_norm.weight", {d});
    l.ln_cross_b = t.get(p + "encoder_attn_layer_norm.bias", {d});
    l.cross_attn = load_attention(t, p + "encoder_attn.", d);
  }
  l.ln2_w = t.get(p + "final_layer_norm.weight", {d});
  l.ln2_b = t.get(p + "final_layer_norm.bias", {d});
  l.fc1_w = t.get(p + "fc1.weight", {ffn, d});
  l.fc1_b = t.get(p + "fc1.bias", {ffn});
  l.fc2_w = t.get(p + "fc2.weight", {d, ffn});
  l.fc2_b = t.get(p + "fc2.bias", {d});
  return l;
}

int json_int(const nlohmann::json& j, const char* key, int fallback, const std::string& path) {
  if (!j.contains(key)) return fallback;
  if (!j[key].is_number_integer()) throw std::runtime_error("whisper: " + path + ": `" + key + "` is not an integer");
  const auto v = j[key].get<std::int64_t>();
  if (v <= 0 || v > (1 << 20)) throw std::runtime_error("whisper: " + path + ": `" + key + "` is out of range");
  return static_cast<int>(v);
}

// [N, n, d] -> [N, H, n, hd]
torch::Tensor split_heads(const torch::Tensor& x, std::int64_t heads) {
  return x.view({x.size(0), x.size(1), heads, -1}).transpose(1, 2);
}

// [N, H, n, hd] -> [N, n, d]
torch::Tensor merge_heads(const torch::Tensor& x) {
  return x.transpose(1, 2).reshape({x.size(0), x.size(2), -1});
}

// x [..., in] . w [out, in]^T + b. A few rows on the CPU (a decoding step) go through
// cpu::project_rows, which streams w once instead of packing it as BLAS does on every call.
torch::Tensor project(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b = {}) {
  const std::int64_t rows = x.numel() / x.size(-1);
  if (!x.device().is_cpu() || rows > 8 || x.scalar_type() != torch::kFloat32) {
    return b.defined() ? torch::linear(x, w, b) : torch::linear(x, w);
  }
  const torch::Tensor in = x.contiguous();
  auto sizes = x.sizes().vec();
  sizes.back() = w.size(0);
  torch::Tensor out = torch::empty(sizes, x.options());
  cpu::project_rows(in.data_ptr<float>(), rows, w.data_ptr<float>(), w.size(0), w.size(1), out.data_ptr<float>());
  if (b.defined()) out.add_(b);
  return out;
}

torch::Tensor mlp(const WhisperLayerWeights& w, const torch::Tensor& x, double eps) {
  torch::Tensor h = torch::layer_norm(x, {x.size(-1)}, w.ln2_w, w.ln2_b, eps);
  h = torch::gelu(project(h, w.fc1_w, w.fc1_b));
  return project(h, w.fc2_w, w.fc2_b);
}

double hz_to_mel(double f) {  // Slaney
  constexpr double f_sp = 200.0 / 3, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp;
  const double logstep = std::log(6.4) / 27.0;
  return f < min_log_hz ? f / f_sp : min_log_mel + std::log(f / min_log_hz) / logstep;
}

double mel_to_hz(double m) {
  constexpr double f_sp = 200.0 / 3, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp;
  const double logstep = std::log(6.4) / 27.0;
  return m < min_log_mel ? f_sp * m : min_log_hz * std::exp(logstep * (m - min_log_mel));
}

}  // namespace

WhisperConfig WhisperConfig::load(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("whisper: cannot read " + path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw std::runtime_error("whisper: " + path + ": malformed JSON: " + e.what());
  }
  if (!j.is_object()) throw std::runtime_error("whisper: " + path + ": not a JSON object");
  if (j.contains("model_type") && j["model_type"] != "whisper") {
    throw std::runtime_error("whisper: " + path + ": model_type is not \"whisper\"");
  }
  WhisperConfig c;
  c.num_mel_bins = json_int(j, "num_mel_bins", c.num_mel_bins, path);
  c.d_model = json_int(j, "d_model", c.d_model, path);
  c.encoder_layers = json_int(j, "encoder_layers", c.encoder_layers, path);
  c.decoder_layers = json_int(j, "decoder_layers", c.decoder_layers, path);
  c.encoder_attention_heads = json_int(j, "encoder_attention_heads", c.encoder_attention_heads, path);
  c.decoder_attention_heads = json_int(j, "decoder_attention_heads", c.decoder_attention_heads, path);
  c.encoder_ffn_dim = json_int(j, "encoder_ffn_dim", c.encoder_ffn_dim, path);
  c.decoder_ffn_dim = json_int(j, "decoder_ffn_dim", c.decoder_ffn_dim, path);
  c.vocab_size = json_int(j, "vocab_size", c.vocab_size, path);
  c.max_source_positions = json_int(j, "max_source_positions", c.max_source_positions, path);
  c.max_target_positions = json_int(j, "max_target_positions", c.max_target_positions, path);
  if (c.d_model % c.encoder_attention_heads != 0 || c.d_model % c.decoder_attention_heads != 0) {
    throw std::runtime_error("whisper: " + path + ": d_model is not a multiple of the heads");
  }
  if (c.max_source_positions * 2 != kWhisperFrames) {
    throw std::runtime_error("whisper: " + path + ": max_source_positions must be 1500 (30 s windows)");
  }
  return c;
}

torch::Tensor whisper_mel_filters(int n_mels) {
  const int bins = kWhisperNFft / 2 + 1;
  const double fmax = kWhisperSampleRate / 2.0;
  std::vector<double> mel_f(static_cast<std::size_t>(n_mels) + 2);
  const double m0 = hz_to_mel(0), m1 = hz_to_mel(fmax);
  for (std::size_t i = 0; i < mel_f.size(); ++i) {
    mel_f[i] = mel_to_hz(m0 + (m1 - m0) * static_cast<double>(i) / static_cast<double>(n_mels + 1));
  }
  torch::Tensor out = torch::zeros({n_mels, bins}, torch::kFloat32);
  auto a = out.accessor<float, 2>();
  for (int m = 0; m < n_mels; ++m) {
    const double enorm = 2.0 / (mel_f[m + 2] - mel_f[m]);
    for (int k = 0; k < bins; ++k) {
      const double f = fmax * k / (bins - 1);
      const double lower = (f - mel_f[m]) / (mel_f[m + 1] - mel_f[m]);
      const double upper = (mel_f[m + 2] - f) / (mel_f[m + 2] - mel_f[m + 1]);
      a[m][k] = static_cast<float>(std::max(0.0, std::min(lower, upper)) * enorm);
    }
  }
  return out;
}

torch::Tensor whisper_log_mel(std::span<const float> samples, const torch::Tensor& filters) {
  c10::InferenceMode guard;
  torch::Tensor audio = torch::zeros({kWhisperWindowSamples}, torch::kFloat32);
  const std::size_t n = std::min<std::size_t>(samples.size(), kWhisperWindowSamples);
  if (n > 0) std::copy_n(samples.data(), n, audio.data_ptr<float>());
  const torch::Tensor window = torch::hann_window(kWhisperNFft, /*periodic=*/true);
  torch::Tensor spec = torch::stft(audio, kWhisperNFft, kWhisperHop, kWhisperNFft, window,
                                   /*center=*/true, "reflect", /*normalized=*/false,
                                   /*onesided=*/true, /*return_complex=*/true);
  torch::Tensor power = spec.narrow(1, 0, kWhisperFrames).abs().pow(2);  // [201, 3000]
  torch::Tensor mel = torch::matmul(filters.to(power.device()), power);
  torch::Tensor log = mel.clamp_min(1e-10).log10();
  log = torch::maximum(log, log.max() - 8.0);
  return ((log + 4.0) / 4.0).contiguous();
}

WhisperModel::WhisperModel(const std::string& dir, torch::Device device, bool encoder_bf16)
    : device_(device), encoder_bf16_(encoder_bf16 && device.is_cpu()) {
  c10::InferenceMode guard(false);
  config_ = WhisperConfig::load(dir + "/config.json");
  const WhisperConfig& c = config_;
  const TensorLoader t(dir + "/model.safetensors", device);
  const std::int64_t d = c.d_model;
  w_.conv1_w = t.get("model.encoder.conv1.weight", {d, c.num_mel_bins, 3});
  w_.conv1_b = t.get("model.encoder.conv1.bias", {d});
  w_.conv2_w = t.get("model.encoder.conv2.weight", {d, d, 3});
  w_.conv2_b = t.get("model.encoder.conv2.bias", {d});
  w_.enc_pos = t.get("model.encoder.embed_positions.weight", {c.max_source_positions, d});
  for (int i = 0; i < c.encoder_layers; ++i) {
    w_.encoder.push_back(load_layer(t, "model.encoder.layers." + std::to_string(i) + ".", d,
                                    c.encoder_ffn_dim, false));
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(d / c.encoder_attention_heads));
  for (WhisperLayerWeights& l : w_.encoder) {
    const WhisperAttentionWeights& a = l.self_attn;
    l.qkv_w = torch::cat({a.q_w * scale, a.k_w, a.v_w}).contiguous();
    l.qkv_b = torch::cat({a.q_b * scale, torch::zeros_like(a.q_b), a.v_b}).contiguous();
    if (encoder_bf16_) {
      l.qkv_w16 = l.qkv_w.to(torch::kBFloat16).contiguous();
      l.o_w16 = a.o_w.to(torch::kBFloat16).contiguous();
      l.fc1_w16 = l.fc1_w.to(torch::kBFloat16).contiguous();
      l.fc2_w16 = l.fc2_w.to(torch::kBFloat16).contiguous();
      l.self_attn.o_w = torch::Tensor();  // only the bf16 copies are used
      l.fc1_w = torch::Tensor();
      l.fc2_w = torch::Tensor();
      l.qkv_w = torch::Tensor();
    }
    l.self_attn.q_w = l.self_attn.k_w = l.self_attn.v_w = torch::Tensor();  // in qkv_w
  }
  w_.enc_ln_w = t.get("model.encoder.layer_norm.weight", {d});
  w_.enc_ln_b = t.get("model.encoder.layer_norm.bias", {d});
  w_.tok_emb = t.get("model.decoder.embed_tokens.weight", {c.vocab_size, d});
  w_.dec_pos = t.get("model.decoder.embed_positions.weight", {c.max_target_positions, d});
  for (int i = 0; i < c.decoder_layers; ++i) {
    w_.decoder.push_back(load_layer(t, "model.decoder.layers." + std::to_string(i) + ".", d,
                                    c.decoder_ffn_dim, true));
  }
  for (WhisperLayerWeights& l : w_.decoder) {
    l.cross_kv_w = torch::cat({l.cross_attn.k_w, l.cross_attn.v_w}).contiguous();
    l.cross_kv_b = torch::cat({torch::zeros_like(l.cross_attn.v_b), l.cross_attn.v_b}).contiguous();
    l.cross_attn.k_w = l.cross_attn.v_w = torch::Tensor();  // in cross_kv_w
  }
  w_.dec_ln_w = t.get("model.decoder.layer_norm.weight", {d});
  w_.dec_ln_b = t.get("model.decoder.layer_norm.bias", {d});
  mel_filters_ = whisper_mel_filters(c.num_mel_bins).to(device);
}

torch::Tensor WhisperModel::encoder_layer(const WhisperLayerWeights& w, torch::Tensor x) const {
  const double eps = config_.layer_norm_eps;
  const std::int64_t H = config_.encoder_attention_heads;
  const std::int64_t d = config_.d_model;
  torch::Tensor h = torch::layer_norm(x, {x.size(-1)}, w.ln1_w, w.ln1_b, eps);
  const torch::Tensor qkv = torch::linear(h, w.qkv_w, w.qkv_b);  // q already scaled
  const torch::Tensor q = split_heads(qkv.narrow(-1, 0, d), H);
  const torch::Tensor k = split_heads(qkv.narrow(-1, d, d), H);
  const torch::Tensor v = split_heads(qkv.narrow(-1, 2 * d, d), H);
  const torch::Tensor a = torch::softmax(torch::matmul(q, k.transpose(-1, -2)), -1);
  x = x + project(merge_heads(torch::matmul(a, v)), w.self_attn.o_w, w.self_attn.o_b);
  return x + mlp(w, x, config_.layer_norm_eps);
}

void WhisperModel::encode_cpu(torch::Tensor& x, std::int64_t batch) const {
  const std::int64_t d = config_.d_model, H = config_.encoder_attention_heads, hd = d / H;
  const std::int64_t T = config_.max_source_positions, rows = batch * T;
  const double eps = config_.layer_norm_eps;
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  const auto bf = torch::kBFloat16;
  torch::Tensor qkv = torch::empty({rows, 3 * d}, f32);
  torch::Tensor attn = torch::empty({rows, d}, f32);
  torch::Tensor ffn = torch::empty({rows, config_.encoder_ffn_dim}, f32);
  // Attention: (window, head) pairs spread over torch's threads, each with its own 1500 x 1500
  // scores; the matmuls inside run on one thread each (the BLAS is single-threaded, oneDNN
  // does not nest).
  std::vector<torch::Tensor> scores(static_cast<std::size_t>(std::max(1, at::get_num_threads())));
  for (auto& s : scores) s = torch::empty({T, T}, f32);
  const auto attention = [&](const torch::Tensor& q) {
    at::parallel_for(0, batch * H, 1, [&](std::int64_t begin, std::int64_t end) {
      torch::Tensor& s = scores[static_cast<std::size_t>(at::get_thread_num()) % scores.size()];
      for (std::int64_t i = begin; i < end; ++i) {
        const std::int64_t b = i / H, head = i % H;
        const torch::Tensor rows_b = q.narrow(0, b * T, T);
        const torch::Tensor qh = rows_b.narrow(1, head * hd, hd), kh = rows_b.narrow(1, d + head * hd, hd);
        const torch::Tensor vh = rows_b.narrow(1, 2 * d + head * hd, hd);
        torch::Tensor out = attn.narrow(0, b * T, T).narrow(1, head * hd, hd);
        if (encoder_bf16_) {
          s.copy_(torch::mm(qh, kh.t()));
          cpu::softmax_rows(s.data_ptr<float>(), T, T);
          out.copy_(torch::mm(s.to(bf), vh));
        } else {
          torch::mm_out(s, qh, kh.t());
          cpu::softmax_rows(s.data_ptr<float>(), T, T);
          torch::mm_out(out, s, vh);
        }
      }
    });
  };
  for (const WhisperLayerWeights& l : w_.encoder) {
    if (encoder_bf16_) {
      const torch::Tensor h = torch::layer_norm(x, {d}, l.ln1_w, l.ln1_b, eps).to(bf);
      attention(torch::mm(h, l.qkv_w16.t()).to(torch::kFloat32).add_(l.qkv_b).to(bf));
      x.add_(torch::mm(attn.to(bf), l.o_w16.t())).add_(l.self_attn.o_b);
      const torch::Tensor h2 = torch::layer_norm(x, {d}, l.ln2_w, l.ln2_b, eps).to(bf);
      ffn.copy_(torch::mm(h2, l.fc1_w16.t())).add_(l.fc1_b);
      cpu::gelu_inplace(ffn.data_ptr<float>(), ffn.numel());
      x.add_(torch::mm(ffn.to(bf), l.fc2_w16.t())).add_(l.fc2_b);
    } else {
      torch::Tensor h = torch::layer_norm(x, {d}, l.ln1_w, l.ln1_b, eps);
      llm::detail::parallel_addmm(qkv, h, l.qkv_w.t(), l.qkv_b);
      attention(qkv);
      llm::detail::parallel_addmm(x, attn, l.self_attn.o_w.t(), {}, 1.0);
      x.add_(l.self_attn.o_b);
      h = torch::layer_norm(x, {d}, l.ln2_w, l.ln2_b, eps);
      llm::detail::parallel_addmm(ffn, h, l.fc1_w.t(), l.fc1_b);
      cpu::gelu_inplace(ffn.data_ptr<float>(), ffn.numel());
      llm::detail::parallel_addmm(x, ffn, l.fc2_w.t(), {}, 1.0);
      x.add_(l.fc2_b);
    }
  }
}

torch::Tensor WhisperModel::encode(const torch::Tensor& mel) const {
  c10::InferenceMode guard;
  torch::Tensor x = torch::gelu(torch::conv1d(mel.to(device_), w_.conv1_w, w_.conv1_b, 1, 1));
  x = torch::gelu(torch::conv1d(x, w_.conv2_w, w_.conv2_b, 2, 1));
  x = x.transpose(1, 2) + w_.enc_pos;  // [B, 1500, d]
  if (device_.is_cpu()) {
    const std::int64_t B = x.size(0);
    x = x.reshape({B * x.size(1), x.size(2)}).contiguous();
    encode_cpu(x, B);
    x = x.view({B, -1, config_.d_model});
  } else {
    for (const WhisperLayerWeights& layer : w_.encoder) x = encoder_layer(layer, x);
  }
  return torch::layer_norm(x, {x.size(-1)}, w_.enc_ln_w, w_.enc_ln_b, config_.layer_norm_eps);
}

std::vector<std::pair<torch::Tensor, torch::Tensor>> WhisperModel::cross_kv(const torch::Tensor& audio) const {
  c10::InferenceMode guard;
  const std::int64_t H = config_.decoder_attention_heads;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> out;
  const std::int64_t d = config_.d_model;
  for (const WhisperLayerWeights& l : w_.decoder) {
    torch::Tensor kv = torch::empty({audio.size(0), 2 * d}, audio.options());
    if (device_.is_cpu()) {
      llm::detail::parallel_addmm(kv, audio, l.cross_kv_w.t(), l.cross_kv_b);
    } else {
      kv = torch::addmm(l.cross_kv_b, audio, l.cross_kv_w.t());
    }
    kv = kv.unsqueeze(0);  // [1, 1500, 2d]
    out.emplace_back(split_heads(kv.narrow(2, 0, d), H)[0].contiguous(),
                     split_heads(kv.narrow(2, d, d), H)[0].contiguous());
  }
  return out;
}

torch::Tensor WhisperModel::vocab_logits(const torch::Tensor& x) const {
  if (!device_.is_cpu()) return torch::matmul(x, w_.tok_emb.t()).to(torch::kCPU);
  const torch::Tensor in = x.contiguous();
  const std::int64_t n = in.size(0), V = w_.tok_emb.size(0), d = w_.tok_emb.size(1);
  torch::Tensor out = torch::empty({n, V}, torch::kFloat32);
  cpu::project_rows(in.data_ptr<float>(), n, w_.tok_emb.data_ptr<float>(), V, d, out.data_ptr<float>());
  return out;
}

torch::Tensor WhisperModel::prefill(WhisperDecoderState& state, int r, int seq,
                                    const std::vector<std::int64_t>& tokens,
                                    const std::vector<std::pair<int, int>>& alignment,
                                    torch::Tensor* weights) const {
  c10::InferenceMode guard;
  const auto n = static_cast<std::int64_t>(tokens.size());
  if (n == 0 || n > config_.max_target_positions) throw std::invalid_argument("whisper: prefill length out of range");
  state.ensure_length(n);
  const std::int64_t H = config_.decoder_attention_heads;
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim()));
  const double eps = config_.layer_norm_eps;
  const torch::Tensor ids = torch::tensor(tokens, torch::kInt64).to(device_);
  torch::Tensor x = (w_.tok_emb.index_select(0, ids) + w_.dec_pos.narrow(0, 0, n)).unsqueeze(0);  // [1, n, d]
  const torch::Tensor causal =
      torch::ones({n, n}, torch::TensorOptions().dtype(torch::kBool).device(device_)).triu(1);
  std::vector<torch::Tensor> captured;
  for (std::size_t li = 0; li < w_.decoder.size(); ++li) {
    const WhisperLayerWeights& l = w_.decoder[li];
    torch::Tensor h = torch::layer_norm(x, {x.size(-1)}, l.ln1_w, l.ln1_b, eps);
    const torch::Tensor q = split_heads(project(h, l.self_attn.q_w, l.self_attn.q_b) * scale, H);
    const torch::Tensor k = split_heads(project(h, l.self_attn.k_w), H);
    const torch::Tensor v = split_heads(project(h, l.self_attn.v_w, l.self_attn.v_b), H);
    state.self_k[li][seq].narrow(1, 0, n).copy_(k[0]);
    state.self_v[li][seq].narrow(1, 0, n).copy_(v[0]);
    torch::Tensor s = torch::matmul(q, k.transpose(-1, -2)).masked_fill(causal, -INFINITY);
    x = x + project(merge_heads(torch::matmul(torch::softmax(s, -1), v)), l.self_attn.o_w, l.self_attn.o_b);

    h = torch::layer_norm(x, {x.size(-1)}, l.ln_cross_w, l.ln_cross_b, eps);
    const torch::Tensor cq = split_heads(project(h, l.cross_attn.q_w, l.cross_attn.q_b) * scale, H);
    const torch::Tensor ck = state.cross_k[li][r].unsqueeze(0);
    const torch::Tensor cv = state.cross_v[li][r].unsqueeze(0);
    const torch::Tensor cs = torch::matmul(cq, ck.transpose(-1, -2));  // [1, H, n, 1500], scaled scores
    const torch::Tensor ca = torch::softmax(cs, -1);
    for (const auto& [layer, head] : alignment) {
      if (layer == static_cast<int>(li)) captured.push_back(cs[0][head]);
    }
    x = x + project(merge_heads(torch::matmul(ca, cv)), l.cross_attn.o_w, l.cross_attn.o_b);
    x = x + mlp(l, x, eps);
  }
  x = torch::layer_norm(x, {x.size(-1)}, w_.dec_ln_w, w_.dec_ln_b, eps);
  if (weights != nullptr && !captured.empty()) *weights = torch::stack(captured).to(torch::kCPU);
  return vocab_logits(x[0]);
}

torch::Tensor WhisperModel::step(WhisperDecoderState& state, const std::vector<std::int64_t>& tokens,
                                 const std::vector<std::int64_t>& lens) const {
  c10::InferenceMode guard;
  const auto N = static_cast<std::int64_t>(tokens.size());
  const std::int64_t beams = state.beams();
  if (N == 0 || N % beams != 0 || N > static_cast<std::int64_t>(state.requests()) * beams ||
      lens.size() != tokens.size()) {
    throw std::invalid_argument("whisper: step over slots that are not whole requests");
  }
  const std::int64_t R = N / beams;
  std::vector<std::int64_t> pos(lens.size());
  std::int64_t T = 1;
  for (std::size_t i = 0; i < lens.size(); ++i) {
    pos[i] = std::max<std::int64_t>(lens[i], 0);
    T = std::max(T, pos[i] + 1);
  }
  if (T > config_.max_target_positions) throw std::invalid_argument("whisper: step past the decoder context");
  state.ensure_length(T);
  const std::int64_t H = config_.decoder_attention_heads;
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim()));
  const double eps = config_.layer_norm_eps;
  const torch::Tensor ids = torch::tensor(tokens, torch::kInt64).to(device_);
  const torch::Tensor pos_t = torch::tensor(pos, torch::kInt64).to(device_);
  const torch::Tensor slots = torch::arange(N, torch::TensorOptions().dtype(torch::kInt64).device(device_));
  // Position j of slot i is visible when j <= pos[i].
  const torch::Tensor mask =
      torch::arange(T, torch::TensorOptions().dtype(torch::kInt64).device(device_)).view({1, 1, 1, T}) >
      pos_t.view({N, 1, 1, 1});
  torch::Tensor x = (w_.tok_emb.index_select(0, ids) + w_.dec_pos.index_select(0, pos_t)).unsqueeze(1);  // [N,1,d]
  const std::int64_t hd = head_dim();
  const std::int64_t frames = config_.max_source_positions;
  const bool cpu_attention = device_.is_cpu() && hd % 8 == 0;
  std::vector<std::int64_t> self_slot(pos.size()), self_len(pos.size()), cross_slot(pos.size()),
      cross_len(pos.size(), frames);
  for (std::size_t i = 0; i < pos.size(); ++i) {
    self_slot[i] = static_cast<std::int64_t>(i);
    self_len[i] = pos[i] + 1;
    cross_slot[i] = static_cast<std::int64_t>(i) / beams;
  }
  for (std::size_t li = 0; li < w_.decoder.size(); ++li) {
    const WhisperLayerWeights& l = w_.decoder[li];
    torch::Tensor h = torch::layer_norm(x, {x.size(-1)}, l.ln1_w, l.ln1_b, eps);
    const torch::Tensor q = split_heads(project(h, l.self_attn.q_w, l.self_attn.q_b) * scale, H);
    const torch::Tensor k = split_heads(project(h, l.self_attn.k_w), H);  // [N, H, 1, hd]
    const torch::Tensor v = split_heads(project(h, l.self_attn.v_w, l.self_attn.v_b), H);
    using torch::indexing::TensorIndex;
    state.self_k[li].index_put_({slots, Slice(), pos_t}, k.squeeze(2));
    state.self_v[li].index_put_({slots, Slice(), pos_t}, v.squeeze(2));
    if (cpu_attention) {
      // Straight from the slot buffers (cpu::attend_rows): no per-(row, head) GEMMs.
      const torch::Tensor qc = q.transpose(1, 2).contiguous();  // [N, 1, H, hd]
      torch::Tensor out = torch::empty({N, 1, config_.d_model}, x.options());
      cpu::attend_rows({qc.data_ptr<float>(), state.self_k[li].data_ptr<float>(), state.self_v[li].data_ptr<float>(),
                        self_slot.data(), self_len.data(), H, hd, state.self_k[li].size(2), T, out.data_ptr<float>()},
                       N);
      x = x + project(out, l.self_attn.o_w, l.self_attn.o_b);
      h = torch::layer_norm(x, {x.size(-1)}, l.ln_cross_w, l.ln_cross_b, eps);
      const torch::Tensor cq = (project(h, l.cross_attn.q_w, l.cross_attn.q_b) * scale).contiguous();  // [N, 1, d]
      torch::Tensor cout = torch::empty({N, 1, config_.d_model}, x.options());
      cpu::attend_rows({cq.data_ptr<float>(), state.cross_k[li].data_ptr<float>(), state.cross_v[li].data_ptr<float>(),
                        cross_slot.data(), cross_len.data(), H, hd, state.cross_k[li].size(2), frames,
                        cout.data_ptr<float>()},
                       N);
      x = x + project(cout, l.cross_attn.o_w, l.cross_attn.o_b);
      x = x + mlp(l, x, eps);
      continue;
    }
    const torch::Tensor K = state.self_k[li].narrow(0, 0, N).narrow(2, 0, T);
    const torch::Tensor V = state.self_v[li].narrow(0, 0, N).narrow(2, 0, T);
    torch::Tensor s = torch::matmul(q, K.transpose(-1, -2)).masked_fill(mask, -INFINITY);  // [N,H,1,T]
    x = x + project(merge_heads(torch::matmul(torch::softmax(s, -1), V)), l.self_attn.o_w, l.self_attn.o_b);

    h = torch::layer_norm(x, {x.size(-1)}, l.ln_cross_w, l.ln_cross_b, eps);
    // [N, 1, d] -> [R, beams, H, hd] -> [R, H, beams, hd]: the beams of a request share its K/V.
    const torch::Tensor cq = (project(h, l.cross_attn.q_w, l.cross_attn.q_b) * scale)
                                 .view({R, beams, H, -1})
                                 .transpose(1, 2);
    const torch::Tensor ck = state.cross_k[li].narrow(0, 0, R);
    const torch::Tensor cv = state.cross_v[li].narrow(0, 0, R);
    const torch::Tensor ca = torch::softmax(torch::matmul(cq, ck.transpose(-1, -2)), -1);
    const torch::Tensor co = torch::matmul(ca, cv).transpose(1, 2).reshape({N, 1, -1});
    x = x + project(co, l.cross_attn.o_w, l.cross_attn.o_b);
    x = x + mlp(l, x, eps);
  }
  x = torch::layer_norm(x.squeeze(1), {x.size(-1)}, w_.dec_ln_w, w_.dec_ln_b, eps);
  return vocab_logits(x);
}

WhisperDecoderState::WhisperDecoderState(const WhisperModel& model, int beams)
    : model_(model), beams_(beams) {
  if (beams < 1) throw std::invalid_argument("whisper: beams must be >= 1");
  const auto L = static_cast<std::size_t>(model.config().decoder_layers);
  self_k.resize(L);
  self_v.resize(L);
  cross_k.resize(L);
  cross_v.resize(L);
}

void WhisperDecoderState::ensure_requests(int n) {
  if (n <= request_capacity_) return;
  c10::InferenceMode guard;
  const int cap = std::max(n, 2 * request_capacity_);  // a scratch state (one request) stays small
  const auto& c = model_.config();
  const std::int64_t H = c.decoder_attention_heads, hd = model_.head_dim();
  const auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(model_.device());
  const std::int64_t T = std::max<std::int64_t>(length_capacity_, 32);
  for (std::size_t l = 0; l < self_k.size(); ++l) {
    // Self K/V beyond a sequence's length is masked, but V must stay finite there (a zero
    // weight times NaN is NaN): zeros. Cross K/V is written whole by add_request: no fill.
    auto grow = [&](torch::Tensor& t, std::int64_t rows, std::int64_t len, bool zero) {
      torch::Tensor bigger = zero ? torch::zeros({rows, H, len, hd}, opts) : torch::empty({rows, H, len, hd}, opts);
      if (t.defined()) bigger.narrow(0, 0, t.size(0)).narrow(2, 0, t.size(2)).copy_(t);
      t = bigger;
    };
    grow(self_k[l], static_cast<std::int64_t>(cap) * beams_, T, true);
    grow(self_v[l], static_cast<std::int64_t>(cap) * beams_, T, true);
    grow(cross_k[l], cap, c.max_source_positions, false);
    grow(cross_v[l], cap, c.max_source_positions, false);
  }
  request_capacity_ = cap;
  length_capacity_ = T;
}

void WhisperDecoderState::ensure_length(std::int64_t t) {
  if (t <= length_capacity_) return;
  c10::InferenceMode guard;
  const std::int64_t cap = std::min<std::int64_t>(std::max<std::int64_t>(t, 2 * length_capacity_),
                                                  model_.config().max_target_positions);
  for (std::size_t l = 0; l < self_k.size(); ++l) {
    for (torch::Tensor* buf : {&self_k[l], &self_v[l]}) {
      auto sizes = buf->sizes().vec();
      sizes[2] = cap;
      torch::Tensor bigger = torch::zeros(sizes, buf->options());
      bigger.narrow(2, 0, buf->size(2)).copy_(*buf);
      *buf = bigger;
    }
  }
  length_capacity_ = cap;
}

int WhisperDecoderState::add_request(const std::vector<std::pair<torch::Tensor, torch::Tensor>>& cross) {
  ensure_requests(requests_ + 1);
  c10::InferenceMode guard;
  const int r = requests_++;
  for (std::size_t l = 0; l < cross.size(); ++l) {
    cross_k[l][r].copy_(cross[l].first);
    cross_v[l][r].copy_(cross[l].second);
  }
  return r;
}

int WhisperDecoderState::remove_request(int r) {
  if (r < 0 || r >= requests_) throw std::invalid_argument("whisper: no such request slot");
  c10::InferenceMode guard;
  const int last = --requests_;
  if (r != last) {
    for (std::size_t l = 0; l < self_k.size(); ++l) {
      cross_k[l][r].copy_(cross_k[l][last]);
      cross_v[l][r].copy_(cross_v[l][last]);
      self_k[l].narrow(0, static_cast<std::int64_t>(r) * beams_, beams_)
          .copy_(self_k[l].narrow(0, static_cast<std::int64_t>(last) * beams_, beams_));
      self_v[l].narrow(0, static_cast<std::int64_t>(r) * beams_, beams_)
          .copy_(self_v[l].narrow(0, static_cast<std::int64_t>(last) * beams_, beams_));
    }
  }
  return last;
}

void WhisperDecoderState::copy_sequence(int from, int to, std::int64_t len) {
  if (from == to || len <= 0) return;
  c10::InferenceMode guard;
  for (std::size_t l = 0; l < self_k.size(); ++l) {
    self_k[l][to].narrow(1, 0, len).copy_(self_k[l][from].narrow(1, 0, len));
    self_v[l][to].narrow(1, 0, len).copy_(self_v[l][from].narrow(1, 0, len));
  }
}

void WhisperDecoderState::reorder(int r, const std::vector<int>& parents, std::int64_t len) {
  bool identity = true;
  for (std::size_t j = 0; j < parents.size(); ++j) identity = identity && parents[j] == static_cast<int>(j);
  if (identity || len <= 0) return;
  c10::InferenceMode guard;
  const std::int64_t base = static_cast<std::int64_t>(r) * beams_;
  std::vector<std::int64_t> src;
  for (int p : parents) src.push_back(base + p);
  const torch::Tensor idx = torch::tensor(src, torch::kInt64).to(model_.device());
  for (std::size_t l = 0; l < self_k.size(); ++l) {
    for (torch::Tensor* buf : {&self_k[l], &self_v[l]}) {
      const torch::Tensor picked = buf->index_select(0, idx).narrow(2, 0, len);
      buf->narrow(0, base, static_cast<std::int64_t>(parents.size())).narrow(2, 0, len).copy_(picked);
    }
  }
}

}  // namespace talkserve::speech::detail
