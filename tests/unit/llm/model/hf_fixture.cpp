#include "hf_fixture.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>

#include "test_paths.hpp"

namespace talkserve::llm::test {
namespace {

uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7FFF + ((u >> 16) & 1);  // round to nearest even
  return static_cast<uint16_t>(u >> 16);
}

float bf16_to_f32(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000;
  const int32_t exp = static_cast<int32_t>((x >> 23) & 0xFF) - 127 + 15;
  uint32_t mant = x & 0x7FFFFF;
  if (exp >= 31) return static_cast<uint16_t>(sign | 0x7C00);
  if (exp <= 0) {
    if (exp < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000;
    const uint32_t shift = static_cast<uint32_t>(14 - exp);
    uint32_t half = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1);
    const uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = sign | (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1FFF;
  if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) ++half;
  return static_cast<uint16_t>(half);
}

float f16_to_f32(uint16_t h) {
  const bool neg = (h & 0x8000) != 0;
  const int exp = (h >> 10) & 0x1F;
  const int mant = h & 0x3FF;
  float v;
  if (exp == 0) v = std::ldexp(static_cast<float>(mant), -24);
  else v = std::ldexp(static_cast<float>(mant | 0x400), exp - 25);
  return neg ? -v : v;
}

std::string encode_tensor(const std::vector<float>& data, const std::string& dtype) {
  std::string out;
  if (dtype == "F32") {
    out.assign(reinterpret_cast<const char*>(data.data()), data.size() * 4);
    return out;
  }
  out.resize(data.size() * 2);
  for (size_t i = 0; i < data.size(); ++i) {
    const uint16_t h = dtype == "BF16" ? f32_to_bf16(data[i]) : f32_to_f16(data[i]);
    std::memcpy(out.data() + 2 * i, &h, 2);
  }
  return out;
}

void rmsnorm(std::vector<double>& out, const std::vector<double>& x, const float* w, double eps) {
  double ss = 0;
  for (double v : x) ss += v * v;
  const double inv = 1.0 / std::sqrt(ss / static_cast<double>(x.size()) + eps);
  out.resize(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = x[i] * inv * w[i];
}

// y = W x (+ b), W [rows, cols] row-major.
std::vector<double> matvec(const DenseTensor& w, const std::vector<double>& x, const DenseTensor* b = nullptr) {
  const auto rows = static_cast<size_t>(w.shape[0]), cols = static_cast<size_t>(w.shape[1]);
  std::vector<double> y(rows);
  for (size_t r = 0; r < rows; ++r) {
    double acc = b ? b->data[r] : 0.0;
    for (size_t c = 0; c < cols; ++c) acc += static_cast<double>(w.data[r * cols + c]) * x[c];
    y[r] = acc;
  }
  return y;
}

}  // namespace

DenseModel stories_as_hf() {
  const std::string bytes = read_file(stories_model());
  int32_t h[7];
  std::memcpy(h, bytes.data(), sizeof(h));
  DenseModel m;
  m.dim = h[0]; m.hidden = h[1]; m.layers = h[2]; m.heads = h[3]; m.kv_heads = h[4];
  m.vocab = std::abs(h[5]); m.seq_len = h[6];
  m.tied = h[5] > 0;
  const int64_t D = m.dim, F = m.hidden, V = m.vocab, HD = m.head_dim();
  const int64_t QD = m.heads * HD, KD = m.kv_heads * HD;
  const float* p = reinterpret_cast<const float*>(bytes.data() + sizeof(h));
  auto take = [&](int64_t n) {
    std::vector<float> v(p, p + n);
    p += n;
    return v;
  };
  // Rows (h, 2j + r) of llama2.c become rows (h, r * HD/2 + j) in HF layout.
  auto permute = [&](const std::vector<float>& w, int64_t n_heads) {
    std::vector<float> out(w.size());
    for (int64_t hh = 0; hh < n_heads; ++hh)
      for (int64_t j = 0; j < HD / 2; ++j)
        for (int64_t r = 0; r < 2; ++r)
          std::memcpy(&out[static_cast<size_t>(((hh * HD) + r * HD / 2 + j) * D)],
                      &w[static_cast<size_t>(((hh * HD) + 2 * j + r) * D)], static_cast<size_t>(D) * 4);
    return out;
  };
  m.tensors["model.embed_tokens.weight"] = {{V, D}, take(V * D)};
  std::vector<std::vector<float>> att(m.layers), wq(m.layers), wk(m.layers), wv(m.layers), wo(m.layers),
      ffn(m.layers), w1(m.layers), w2(m.layers), w3(m.layers);
  for (auto& v : att) v = take(D);
  for (auto& v : wq) v = take(QD * D);
  for (auto& v : wk) v = take(KD * D);
  for (auto& v : wv) v = take(KD * D);
  for (auto& v : wo) v = take(D * QD);
  for (auto& v : ffn) v = take(D);
  for (auto& v : w1) v = take(F * D);
  for (auto& v : w2) v = take(D * F);
  for (auto& v : w3) v = take(F * D);
  for (int l = 0; l < m.layers; ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    m.tensors[pre + "input_layernorm.weight"] = {{D}, att[l]};
    m.tensors[pre + "self_attn.q_proj.weight"] = {{QD, D}, permute(wq[l], m.heads)};
    m.tensors[pre + "self_attn.k_proj.weight"] = {{KD, D}, permute(wk[l], m.kv_heads)};
    m.tensors[pre + "self_attn.v_proj.weight"] = {{KD, D}, wv[l]};
    m.tensors[pre + "self_attn.o_proj.weight"] = {{D, QD}, wo[l]};
    m.tensors[pre + "post_attention_layernorm.weight"] = {{D}, ffn[l]};
    m.tensors[pre + "mlp.gate_proj.weight"] = {{F, D}, w1[l]};
    m.tensors[pre + "mlp.down_proj.weight"] = {{D, F}, w2[l]};
    m.tensors[pre + "mlp.up_proj.weight"] = {{F, D}, w3[l]};
  }
  m.tensors["model.norm.weight"] = {{D}, take(D)};
  return m;
}

std::string safetensors_bytes(const std::map<std::string, RawTensor>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  header["__metadata__"] = {{"format", "pt"}};
  std::string data;
  for (const auto& [name, t] : tensors) {
    header[name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
    data += t.bytes;
  }
  std::string h = header.dump();
  while (h.size() % 8 != 0) h += ' ';
  const uint64_t n = h.size();
  std::string out(reinterpret_cast<const char*>(&n), 8);
  return out + h + data;
}

DenseModel random_model(int dim, int hidden, int layers, int heads, int kv_heads, int vocab, int seq_len,
                        uint32_t seed) {
  DenseModel m;
  m.dim = dim;
  m.hidden = hidden;
  m.layers = layers;
  m.heads = heads;
  m.kv_heads = kv_heads;
  m.vocab = vocab;
  m.seq_len = seq_len;
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const auto matrix = [&](int64_t rows, int64_t cols) {
    DenseTensor t{{rows, cols}, std::vector<float>(static_cast<size_t>(rows * cols))};
    const float scale = 1.0f / std::sqrt(static_cast<float>(cols));
    for (float& v : t.data) v = nd(rng) * scale;
    return t;
  };
  const auto norm = [&](int64_t n) {
    DenseTensor t{{n}, std::vector<float>(static_cast<size_t>(n))};
    for (float& v : t.data) v = 1.0f + 0.1f * nd(rng);
    return t;
  };
  const int64_t QD = static_cast<int64_t>(heads) * m.head_dim(), KD = static_cast<int64_t>(kv_heads) * m.head_dim();
  m.tensors["model.embed_tokens.weight"] = matrix(vocab, dim);
  for (int l = 0; l < layers; ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    m.tensors[pre + "input_layernorm.weight"] = norm(dim);
    m.tensors[pre + "self_attn.q_proj.weight"] = matrix(QD, dim);
    m.tensors[pre + "self_attn.k_proj.weight"] = matrix(KD, dim);
    m.tensors[pre + "self_attn.v_proj.weight"] = matrix(KD, dim);
    m.tensors[pre + "self_attn.o_proj.weight"] = matrix(dim, QD);
    m.tensors[pre + "post_attention_layernorm.weight"] = norm(dim);
    m.tensors[pre + "mlp.gate_proj.weight"] = matrix(hidden, dim);
    m.tensors[pre + "mlp.down_proj.weight"] = matrix(dim, hidden);
    m.tensors[pre + "mlp.up_proj.weight"] = matrix(hidden, dim);
  }
  m.tensors["model.norm.weight"] = norm(dim);
  return m;
}

void write_hf_checkpoint(const std::string& dir, const DenseModel& m, const WriteOptions& opt) {
  nlohmann::json cfg = {{"architectures", {opt.architecture}},
                        {"hidden_size", m.dim},
                        {"intermediate_size", m.hidden},
                        {"num_hidden_layers", m.layers},
                        {"num_attention_heads", m.heads},
                        {"num_key_value_heads", m.kv_heads},
                        {"vocab_size", m.vocab},
                        {"max_position_embeddings", m.seq_len},
                        {"rms_norm_eps", m.rms_eps},
                        {"rope_theta", m.rope_theta},
                        {"tie_word_embeddings", m.tied},
                        {"bos_token_id", 1},
                        {"eos_token_id", 2},
                        {"torch_dtype", opt.dtype == "BF16" ? "bfloat16" : opt.dtype == "F16" ? "float16" : "float32"}};
  write_file(dir + "/config.json", cfg.dump(2));
  std::vector<std::map<std::string, RawTensor>> shards(static_cast<size_t>(opt.shards));
  size_t i = 0;
  for (const auto& [name, t] : m.tensors) {
    shards[i++ % shards.size()][name] = {opt.dtype, t.shape, encode_tensor(t.data, opt.dtype)};
  }
  if (opt.shards == 1) {
    write_file(dir + "/model.safetensors", safetensors_bytes(shards[0]));
    return;
  }
  nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", nlohmann::json::object()}};
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string fname = "model-0000" + std::to_string(s + 1) + "-of-0000" + std::to_string(shards.size()) +
                              ".safetensors";
    write_file(dir + "/" + fname, safetensors_bytes(shards[s]));
    for (const auto& [name, t] : shards[s]) index["weight_map"][name] = fname;
  }
  write_file(dir + "/model.safetensors.index.json", index.dump(2));
}

void round_weights(DenseModel& m, const std::string& dtype) {
  for (auto& [name, t] : m.tensors) {
    for (float& v : t.data) v = dtype == "BF16" ? bf16_to_f32(f32_to_bf16(v)) : f16_to_f32(f32_to_f16(v));
  }
}

std::vector<float> reference_logits(const DenseModel& m, const std::vector<int32_t>& tokens) {
  const int HD = m.head_dim(), H = m.heads, KVH = m.kv_heads, D = m.dim, F = m.hidden;
  const auto& T = m.tensors;
  auto t = [&](const std::string& n) -> const DenseTensor& {
    auto it = T.find(n);
    if (it == T.end()) throw std::runtime_error("reference: missing " + n);
    return it->second;
  };
  std::vector<std::vector<std::vector<double>>> kc(static_cast<size_t>(m.layers)), vc(static_cast<size_t>(m.layers));
  std::vector<double> x;
  for (size_t pos = 0; pos < tokens.size(); ++pos) {
    const auto& emb = t("model.embed_tokens.weight").data;
    x.assign(emb.begin() + tokens[pos] * D, emb.begin() + (tokens[pos] + 1) * D);
    for (int l = 0; l < m.layers; ++l) {
      const std::string pre = "model.layers." + std::to_string(l) + ".";
      std::vector<double> h;
      rmsnorm(h, x, t(pre + "input_layernorm.weight").data.data(), m.rms_eps);
      const bool b = m.qkv_bias;
      std::vector<double> q = matvec(t(pre + "self_attn.q_proj.weight"), h, b ? &t(pre + "self_attn.q_proj.bias") : nullptr);
      std::vector<double> k = matvec(t(pre + "self_attn.k_proj.weight"), h, b ? &t(pre + "self_attn.k_proj.bias") : nullptr);
      std::vector<double> v = matvec(t(pre + "self_attn.v_proj.weight"), h, b ? &t(pre + "self_attn.v_proj.bias") : nullptr);
      auto rope = [&](std::vector<double>& vec, int n_heads) {
        for (int hh = 0; hh < n_heads; ++hh) {
          for (int j = 0; j < HD / 2; ++j) {
            const double freq = std::pow(m.rope_theta, -2.0 * j / HD);
            const double a = static_cast<double>(pos) * freq;
            double& x1 = vec[static_cast<size_t>(hh * HD + j)];
            double& x2 = vec[static_cast<size_t>(hh * HD + j + HD / 2)];
            const double r1 = x1 * std::cos(a) - x2 * std::sin(a);
            const double r2 = x2 * std::cos(a) + x1 * std::sin(a);
            x1 = r1;
            x2 = r2;
          }
        }
      };
      rope(q, H);
      rope(k, KVH);
      kc[static_cast<size_t>(l)].push_back(k);
      vc[static_cast<size_t>(l)].push_back(v);
      std::vector<double> att(static_cast<size_t>(H * HD), 0.0);
      for (int hh = 0; hh < H; ++hh) {
        const int kvh = hh / (H / KVH);
        std::vector<double> s(pos + 1);
        double mx = -1e300;
        for (size_t p = 0; p <= pos; ++p) {
          double dot = 0;
          for (int d = 0; d < HD; ++d) dot += q[static_cast<size_t>(hh * HD + d)] * kc[static_cast<size_t>(l)][p][static_cast<size_t>(kvh * HD + d)];
          s[p] = dot / std::sqrt(static_cast<double>(HD));
          mx = std::max(mx, s[p]);
        }
        double sum = 0;
        for (double& e : s) sum += (e = std::exp(e - mx));
        for (size_t p = 0; p <= pos; ++p)
          for (int d = 0; d < HD; ++d)
            att[static_cast<size_t>(hh * HD + d)] += s[p] / sum * vc[static_cast<size_t>(l)][p][static_cast<size_t>(kvh * HD + d)];
      }
      std::vector<double> o = matvec(t(pre + "self_attn.o_proj.weight"), att);
      for (int i = 0; i < D; ++i) x[static_cast<size_t>(i)] += o[static_cast<size_t>(i)];
      rmsnorm(h, x, t(pre + "post_attention_layernorm.weight").data.data(), m.rms_eps);
      std::vector<double> g = matvec(t(pre + "mlp.gate_proj.weight"), h);
      std::vector<double> u = matvec(t(pre + "mlp.up_proj.weight"), h);
      for (int i = 0; i < F; ++i) {
        const double gi = g[static_cast<size_t>(i)];
        g[static_cast<size_t>(i)] = gi / (1.0 + std::exp(-gi)) * u[static_cast<size_t>(i)];
      }
      std::vector<double> dn = matvec(t(pre + "mlp.down_proj.weight"), g);
      for (int i = 0; i < D; ++i) x[static_cast<size_t>(i)] += dn[static_cast<size_t>(i)];
    }
  }
  std::vector<double> h;
  rmsnorm(h, x, t("model.norm.weight").data.data(), m.rms_eps);
  const DenseTensor& cls = m.tied ? t("model.embed_tokens.weight") : t("lm_head.weight");
  std::vector<double> logits = matvec(cls, h);
  return std::vector<float>(logits.begin(), logits.end());
}

std::vector<std::vector<float>> runner_logits(ModelRunner& model, const std::vector<int32_t>& prompt,
                                              const std::vector<int32_t>& continuation) {
  std::vector<std::vector<float>> rows;
  std::vector<int32_t> table;
  for (int b = 0; b < model.num_blocks(); ++b) table.push_back(model.num_blocks() - 1 - b);
  StepSequence s;
  s.tokens = prompt;
  s.start_pos = 0;
  s.block_table = table;
  int pos = 0;
  for (size_t i = 0; i <= continuation.size(); ++i) {
    StepBatch batch;
    batch.seqs.push_back(s);
    StepOutput out = model.step(batch);
    rows.push_back(out.logits);
    pos += static_cast<int>(s.tokens.size());
    if (i == continuation.size()) break;
    s.tokens = {continuation[i]};
    s.start_pos = pos;
  }
  return rows;
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  float d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a[i] - b[i]));
  return d;
}

}  // namespace talkserve::llm::test
