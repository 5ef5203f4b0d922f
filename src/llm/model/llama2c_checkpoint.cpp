// llama2.c legacy checkpoint: 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
// vocab_size, seq_len; a negative vocab_size means a separate classifier follows), then
// float32 tensors: token_embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final,
// two legacy RoPE tables (skipped), [wcls]. Each per-layer tensor is stored for all layers
// consecutively. Linear weights are [out, in] row-major, as torch expects.

#include <cstdint>
#include <stdexcept>
#include <string>

#include "llm/model/binary_reader.hpp"
#include "llm/model/llama_weights.hpp"

namespace talkserve::llm::detail {

torch::Tensor interleaved_to_half_rotary(const torch::Tensor& w, int n_heads) {
  const int64_t rows = w.size(0);
  const int64_t hd = rows / n_heads;
  std::vector<int64_t> shape = {n_heads, hd / 2, 2};
  for (int64_t d = 1; d < w.dim(); ++d) shape.push_back(w.size(d));
  return w.reshape(shape).transpose(1, 2).reshape(w.sizes()).contiguous();
}

LlamaWeights load_llama2c_checkpoint(const std::string& path) {
  BinaryFile file(path);
  int32_t header[7] = {};
  file.read_at(0, header, sizeof(header), "the 7-int32 header");
  // The header is validated (and the file size checked against it) before any allocation.
  const Llama2cLayout layout = parse_llama2c_header(header, file.size(), path);
  LlamaWeights w;
  w.hp = layout.hp;
  const LlamaHyperParams& hp = w.hp;
  const bool shared_classifier = layout.shared_classifier;
  const uint64_t rope_tables = layout.rope_floats;
  const int64_t qd = static_cast<int64_t>(hp.n_heads) * hp.head_dim;
  const int64_t kd = static_cast<int64_t>(hp.n_kv_heads) * hp.head_dim;

  uint64_t off = sizeof(header);
  auto read = [&](std::vector<int64_t> shape, const char* what) {
    torch::Tensor t = torch::empty(shape, torch::kFloat32);
    const uint64_t n = static_cast<uint64_t>(t.numel()) * 4;
    file.read_at(off, t.data_ptr(), n, what);
    off += n;
    return t;
  };
  const int64_t d = hp.dim, f = hp.hidden_dim, l = hp.n_layers, v = hp.vocab_size;
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
