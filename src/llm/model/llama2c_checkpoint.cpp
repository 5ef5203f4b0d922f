// llama2.c legacy checkpoint: 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
// vocab_size, seq_len; a negative vocab_size means a separate classifier follows), then
// float32 tensors: token_embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final,
// two legacy RoPE tables (skipped), [wcls]. Each per-layer tensor is stored for all layers
// consecutively. Linear weights are [out, in] row-major, as torch expects.

#include <bit>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "llm/model/binary_reader.hpp"
#include "llm/model/llama_weights.hpp"

namespace talkserve::llm::detail {

static_assert(std::endian::native == std::endian::little,
              "checkpoint readers assume a little-endian host");

void check_hyper_params(const LlamaHyperParams& hp, const std::string& source) {
  auto fail = [&](const std::string& what) { throw std::runtime_error(source + ": " + what); };
  auto in_range = [&](const char* name, long long v, long long lo, long long hi) {
    if (v < lo || v > hi) {
      fail(std::string(name) + " = " + std::to_string(v) + " is outside [" + std::to_string(lo) +
           ", " + std::to_string(hi) + "]");
    }
  };
  in_range("dim", hp.dim, 1, 1 << 16);
  in_range("hidden_dim", hp.hidden_dim, 1, 1 << 18);
  in_range("n_layers", hp.n_layers, 1, 1024);
  in_range("n_heads", hp.n_heads, 1, 1024);
  in_range("n_kv_heads", hp.n_kv_heads, 1, 1024);
  in_range("head_dim", hp.head_dim, 2, 1024);
  in_range("vocab_size", hp.vocab_size, 1, 1 << 22);
  in_range("max_seq_len", hp.max_seq_len, 1, 1 << 22);
  if (hp.n_heads % hp.n_kv_heads != 0) {
    fail("n_heads " + std::to_string(hp.n_heads) + " is not a multiple of n_kv_heads " +
         std::to_string(hp.n_kv_heads));
  }
  if (hp.head_dim % 2 != 0) fail("head_dim " + std::to_string(hp.head_dim) + " is odd (RoPE pairs)");
  if (!(hp.rms_eps > 0) || !(hp.rope_theta > 0)) fail("rms_norm_eps and rope_theta must be > 0");
}

torch::Tensor interleaved_to_half_rotary(const torch::Tensor& w, int n_heads) {
  const int64_t rows = w.size(0);
  const int64_t hd = rows / n_heads;
  std::vector<int64_t> shape = {n_heads, hd / 2, 2};
  for (int64_t d = 1; d < w.dim(); ++d) shape.push_back(w.size(d));
  return w.reshape(shape).transpose(1, 2).reshape(w.sizes()).contiguous();
}

namespace {

constexpr int32_t kLlama2cV1Magic = 0x616b3432;  // "ak42": the newer export formats

}  // namespace

LlamaWeights load_llama2c_checkpoint(const std::string& path) {
  BinaryFile file(path);
  int32_t header[7] = {};
  file.read_at(0, header, sizeof(header), "the 7-int32 header");
  if (header[0] == kLlama2cV1Magic) {
    throw std::runtime_error(path + ": this is a llama2.c version-1/2 export (magic 'ak42'); only "
                             "the legacy format (export.py --version 0) is supported");
  }
  LlamaWeights w;
  LlamaHyperParams& hp = w.hp;
  hp.architecture = "llama2c";
  hp.dim = header[0];
  hp.hidden_dim = header[1];
  hp.n_layers = header[2];
  hp.n_heads = header[3];
  hp.n_kv_heads = header[4];
  const bool shared_classifier = header[5] > 0;
  hp.vocab_size = header[5] == INT32_MIN ? 0 : std::abs(header[5]);
  hp.max_seq_len = header[6];
  hp.head_dim = hp.n_heads > 0 ? hp.dim / hp.n_heads : 0;
  hp.tied_embeddings = shared_classifier;
  const std::string source = "llama2.c checkpoint " + path;
  check_hyper_params(hp, source);
  if (hp.dim % hp.n_heads != 0) {
    throw std::runtime_error(source + ": dim " + std::to_string(hp.dim) +
                             " is not a multiple of n_heads " + std::to_string(hp.n_heads));
  }

  // Sizes in floats; checked against the file size before any allocation.
  const uint64_t D = static_cast<uint64_t>(hp.dim);
  const uint64_t F = static_cast<uint64_t>(hp.hidden_dim);
  const uint64_t L = static_cast<uint64_t>(hp.n_layers);
  const uint64_t V = static_cast<uint64_t>(hp.vocab_size);
  const uint64_t HD = static_cast<uint64_t>(hp.head_dim);
  const uint64_t QD = static_cast<uint64_t>(hp.n_heads) * HD;
  const uint64_t KD = static_cast<uint64_t>(hp.n_kv_heads) * HD;
  const uint64_t rope_tables = static_cast<uint64_t>(hp.max_seq_len) * HD;  // 2 x seq*hd/2
  const uint64_t floats = V * D + L * (D + D * QD + 2 * D * KD + QD * D + D + 3 * D * F) + D +
                          rope_tables + (shared_classifier ? 0 : V * D);
  const uint64_t expected = sizeof(header) + 4 * floats;
  if (file.size() < expected) {
    throw std::runtime_error(source + ": truncated: the header (dim " + std::to_string(hp.dim) +
                             ", layers " + std::to_string(hp.n_layers) + ", vocab " +
                             std::to_string(hp.vocab_size) + ") needs " + std::to_string(expected) +
                             " bytes but the file has " + std::to_string(file.size()));
  }
  if (file.size() > expected) {
    throw std::runtime_error(source + ": " + std::to_string(file.size() - expected) +
                             " unexpected trailing bytes (expected exactly " +
                             std::to_string(expected) + "); not a legacy llama2.c checkpoint?");
  }

  uint64_t off = sizeof(header);
  auto read = [&](std::vector<int64_t> shape, const char* what) {
    torch::Tensor t = torch::empty(shape, torch::kFloat32);
    const uint64_t n = static_cast<uint64_t>(t.numel()) * 4;
    file.read_at(off, t.data_ptr(), n, what);
    off += n;
    return t;
  };
  const int64_t d = hp.dim, f = hp.hidden_dim, l = hp.n_layers, v = hp.vocab_size;
  const int64_t qd = static_cast<int64_t>(QD), kd = static_cast<int64_t>(KD);
  w.embedding = read({v, d}, "token_embedding_table");
  torch::Tensor rms_att = read({l, d}, "rms_att_weight");
  torch::Tensor wq = read({l, qd, d}, "wq");
  torch::Tensor wk = read({l, kd, d}, "wk");
  torch::Tensor wv = read({l, kd, d}, "wv");
  torch::Tensor wo = read({l, d, qd}, "wo");
  torch::Tensor rms_ffn = read({l, d}, "rms_ffn_weight");
  torch::Tensor w1 = read({l, f, d}, "w1");
  torch::Tensor w2 = read({l, d, f}, "w2");
  torch::Tensor w3 = read({l, f, d}, "w3");
  w.final_norm = read({d}, "rms_final_weight");
  off += 4 * rope_tables;  // freq_cis_real / freq_cis_imag: RoPE is recomputed
  w.wcls = shared_classifier ? w.embedding : read({v, d}, "wcls");

  for (int64_t i = 0; i < l; ++i) {
    LlamaLayerWeights lw;
    lw.attn_norm = rms_att[i];
    lw.wq = interleaved_to_half_rotary(wq[i], hp.n_heads);
    lw.wk = interleaved_to_half_rotary(wk[i], hp.n_kv_heads);
    lw.wv = wv[i];
    lw.wo = wo[i];
    lw.ffn_norm = rms_ffn[i];
    lw.w1 = w1[i];
    lw.w2 = w2[i];
    lw.w3 = w3[i];
    w.layers.push_back(std::move(lw));
  }
  return w;
}

}  // namespace talkserve::llm::detail
