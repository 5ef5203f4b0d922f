// One engine step = one forward pass over every sequence's new tokens at once.
//
// The T new tokens of all S sequences are concatenated into one [T] batch, so every linear
// layer is one matmul over T rows. Attention reads the paged KV cache directly: the new K/V
// rows are scattered into their slots (block_table[pos / bs] * bs + pos % bs) of a flat
// [num_blocks * bs, n_kv, hd] pool per layer, then each sequence's whole context is gathered
// into a padded [S, max_ctx] view and the queries into a padded [S, max_q] view, and one
// masked batched matmul + softmax + matmul computes all sequences together (no per-sequence
// or per-token loop; the only C++ loop is over layers). GQA is handled by grouping the
// n_heads / n_kv query heads that share a KV head into the row dimension, so K/V are never
// repeated in memory.
//
// That is forward(), the libtorch path, used for CUDA (libtorch picks the kernels) and half
// dtypes. On CPU in float32, forward_cpu() runs instead: the same matmuls, but norms, RoPE,
// attention (in place over the paged pools, no gather/padding/mask) and SwiGLU are the
// hand-written kernels of cpu_kernels.hpp, with K in a block-transposed layout; see there
// for why. Only APIs present in libtorch 1.13 and 2.x are used.

#include "llm/model/llama_model.hpp"

#include <ATen/Parallel.h>

#include "llm/model/cpu_kernels.hpp"
#include "llm/model/parallel_matmul.hpp"

// The kernels' vector helpers are always inlined; GCC still reports -Wpsabi for their
// template instances at the end of this file, where the header's own pragma no longer holds.
#pragma GCC diagnostic ignored "-Wpsabi"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace talkserve::llm::detail {
namespace {

struct LayerParams {
  torch::Tensor attn_norm, wqkv, bqkv, wo, ffn_norm, w13, w2;
  // W^T for the CPU path's mm/addmm: contiguous copies there (and wqkv, wo, w13, w2 are
  // dropped), transposed views on the libtorch path.
  torch::Tensor wqkv_t, wo_t, w13_t, w2_t;
};

// Per-pair inverse frequencies, computed in float32 like llama2.c (powf) and HF (float32
// inv_freq), so the rotation angles agree with both references bit for bit where possible.
std::vector<float> rope_inv_freq(const LlamaHyperParams& hp) {
  const int half = hp.head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  const float theta = static_cast<float>(hp.rope_theta);
  for (int j = 0; j < half; ++j) {
    inv[static_cast<size_t>(j)] =
        1.0f / std::pow(theta, static_cast<float>(2 * j) / static_cast<float>(hp.head_dim));
  }
  const RopeScaling& rs = hp.rope_scaling;
  if (rs.type == "linear") {
    for (float& f : inv) f = static_cast<float>(f / rs.factor);
  } else if (rs.type == "llama3") {
    const double low_wavelen = rs.original_max_position / rs.low_freq_factor;
    const double high_wavelen = rs.original_max_position / rs.high_freq_factor;
    for (float& f : inv) {
      const double wavelen = 2.0 * M_PI / f;
      if (wavelen < high_wavelen) continue;
      if (wavelen > low_wavelen) {
        f = static_cast<float>(f / rs.factor);
      } else {
        const double smooth = (rs.original_max_position / wavelen - rs.low_freq_factor) /
                              (rs.high_freq_factor - rs.low_freq_factor);
        f = static_cast<float>((1.0 - smooth) * f / rs.factor + smooth * f);
      }
    }
  }
  return inv;
}

class LlamaModel final : public ModelRunner {
 public:
  LlamaModel(LlamaWeights&& w, const RunnerOptions& opt)
      : hp_(w.hp), device_(opt.device), dtype_(opt.dtype), block_size_(opt.block_size),
        num_blocks_(opt.num_blocks) {
    const int max_len = opt.max_seq_len > 0 ? std::min(opt.max_seq_len, hp_.max_seq_len)
                                            : hp_.max_seq_len;
    info_.name = opt.name;
    info_.vocab_size = hp_.vocab_size;
    info_.max_seq_len = max_len;
    info_.dim = hp_.dim;
    info_.n_layers = hp_.n_layers;
    info_.n_heads = hp_.n_heads;
    info_.n_kv_heads = hp_.n_kv_heads;
    info_.head_dim = hp_.head_dim;
    info_.bos_id = hp_.bos_id;
    info_.eos_id = hp_.eos_id;
    if (block_size_ <= 0 || num_blocks_ <= 0) {
      throw std::runtime_error("llm model: block_size and num_blocks must be positive");
    }

    const auto to_dev = [&](const torch::Tensor& t) {
      return t.to(device_, dtype_).contiguous();
    };
    // Norm weights stay float32: the norms compute in float32 for every dtype.
    const auto to_dev_f32 = [&](const torch::Tensor& t) {
      return t.to(device_, torch::kFloat32).contiguous();
    };
    const bool tied = w.wcls.defined() && w.wcls.is_same(w.embedding);
    embedding_ = to_dev(w.embedding);
    wcls_ = tied ? embedding_ : to_dev(w.wcls);
    w.embedding = torch::Tensor();
    w.wcls = torch::Tensor();
    final_norm_ = to_dev_f32(w.final_norm);
    wcls_t_ = wcls_.t();
    cpu_kernels_ = device_.is_cpu() && dtype_ == torch::kFloat32;
    for (LlamaLayerWeights& lw : w.layers) {
      LayerParams p;
      p.attn_norm = to_dev_f32(lw.attn_norm);
      // q, k and v (and gate/up) are fused so each is one matmul over all T rows.
      p.wqkv = to_dev(torch::cat({lw.wq, lw.wk, lw.wv}, 0));
      if (lw.bq.defined()) p.bqkv = to_dev(torch::cat({lw.bq, lw.bk, lw.bv}, 0));
      p.wo = to_dev(lw.wo);
      p.ffn_norm = to_dev_f32(lw.ffn_norm);
      p.w13 = to_dev(torch::cat({lw.w1, lw.w3}, 0));
      p.w2 = to_dev(lw.w2);
      if (cpu_kernels_) {
        // The CPU path multiplies h [T, in] by W^T [in, out]. Stored that way round (and the
        // [out, in] copy dropped), OpenBLAS packs each weight panel with its cheaper copy
        // routine: a 64-token step of a dim-512 model ran ~5% faster than with W^T as a
        // transposed view (bench_llm_model --batches 64).
        p.wqkv_t = p.wqkv.t().contiguous();
        p.wo_t = p.wo.t().contiguous();
        p.w13_t = p.w13.t().contiguous();
        p.w2_t = p.w2.t().contiguous();
        p.wqkv = p.wo = p.w13 = p.w2 = torch::Tensor();
      } else {
        p.wqkv_t = p.wqkv.t();
        p.wo_t = p.wo.t();
        p.w13_t = p.w13.t();
        p.w2_t = p.w2.t();
      }
      lw = LlamaLayerWeights();
      layers_.push_back(std::move(p));
    }

    const std::vector<float> inv = rope_inv_freq(hp_);
    torch::Tensor inv_t = torch::from_blob(const_cast<float*>(inv.data()),
                                           {static_cast<int64_t>(inv.size())}, torch::kFloat32)
                              .clone();
    torch::Tensor pos = torch::arange(max_len, torch::kFloat32).unsqueeze(1);
    torch::Tensor angles = pos * inv_t.unsqueeze(0);  // float32 products, as the references
    rope_cos_ = angles.cos().to(device_, dtype_);
    rope_sin_ = angles.sin().to(device_, dtype_);

    const int64_t slots = static_cast<int64_t>(num_blocks_) * block_size_;
    const auto pool_opts = torch::TensorOptions().device(device_).dtype(dtype_);
    for (int l = 0; l < hp_.n_layers; ++l) {
      // The CPU kernels keep K as [blocks, KVH, HD, bs] (see cpu_kernels.hpp); same size.
      k_pool_.push_back(cpu_kernels_ ? torch::zeros({num_blocks_, hp_.n_kv_heads, hp_.head_dim, block_size_}, pool_opts)
                                     : torch::zeros({slots, hp_.n_kv_heads, hp_.head_dim}, pool_opts));
      v_pool_.push_back(torch::zeros({slots, hp_.n_kv_heads, hp_.head_dim}, pool_opts));
      info_.kv_cache_bytes += static_cast<std::int64_t>(k_pool_.back().nbytes() + v_pool_.back().nbytes());
    }
  }

  const ModelInfo& info() const override { return info_; }
  int block_size() const override { return block_size_; }
  int num_blocks() const override { return num_blocks_; }

  StepOutput step(const StepBatch& batch) override {
    try {
      c10::InferenceMode inference_guard;
      return cpu_kernels_ ? forward_cpu(batch) : forward(batch);
    } catch (const c10::Error& e) {
      throw std::runtime_error(std::string("llm model step failed: ") + e.what_without_backtrace());
    }
  }

 private:
  // Host-side index tensors for one step; validated against the cache geometry.
  struct StepIndex {
    int64_t S = 0, T = 0, max_q = 0, max_ctx = 0;
    std::vector<int64_t> tokens, positions, write_slots, q_dst, gather, start, ctx_len, logit_rows;
    std::vector<int64_t> token_slot_offset, token_ctx;  // per token: its row of `gather`, keys seen
  };

  StepIndex build_index(const StepBatch& batch) const {
    StepIndex ix;
    ix.S = static_cast<int64_t>(batch.seqs.size());
    if (ix.S == 0) throw std::runtime_error("llm model: empty step batch");
    for (const StepSequence& s : batch.seqs) {
      if (s.tokens.empty()) throw std::runtime_error("llm model: a sequence has no new tokens");
      if (s.start_pos < 0) throw std::runtime_error("llm model: negative start_pos");
      const int64_t end = static_cast<int64_t>(s.start_pos) + static_cast<int64_t>(s.tokens.size());
      if (end > info_.max_seq_len) {
        throw std::runtime_error("llm model: sequence length " + std::to_string(end) +
                                 " exceeds the context length " + std::to_string(info_.max_seq_len));
      }
      const int64_t blocks_needed = (end + block_size_ - 1) / block_size_;
      if (static_cast<int64_t>(s.block_table.size()) < blocks_needed) {
        throw std::runtime_error("llm model: block table has " + std::to_string(s.block_table.size()) +
                                 " blocks, " + std::to_string(blocks_needed) + " needed");
      }
      for (int64_t b = 0; b < blocks_needed; ++b) {
        const int32_t id = s.block_table[static_cast<size_t>(b)];
        if (id < 0 || id >= num_blocks_) {
          throw std::runtime_error("llm model: block id " + std::to_string(id) + " out of range [0, " +
                                   std::to_string(num_blocks_) + ")");
        }
      }
      ix.max_q = std::max<int64_t>(ix.max_q, static_cast<int64_t>(s.tokens.size()));
      ix.max_ctx = std::max(ix.max_ctx, end);
      ix.T += static_cast<int64_t>(s.tokens.size());
    }
    ix.gather.assign(static_cast<size_t>(ix.S * ix.max_ctx), 0);
    for (int64_t si = 0; si < ix.S; ++si) {
      const StepSequence& s = batch.seqs[static_cast<size_t>(si)];
      const int64_t n = static_cast<int64_t>(s.tokens.size());
      const int64_t end = s.start_pos + n;
      auto slot_of = [&](int64_t pos) {
        return static_cast<int64_t>(s.block_table[static_cast<size_t>(pos / block_size_)]) * block_size_ +
               pos % block_size_;
      };
      for (int64_t i = 0; i < n; ++i) {
        const int32_t tok = s.tokens[static_cast<size_t>(i)];
        if (tok < 0 || tok >= hp_.vocab_size) {
          throw std::runtime_error("llm model: token id " + std::to_string(tok) + " out of range [0, " +
                                   std::to_string(hp_.vocab_size) + ")");
        }
        ix.tokens.push_back(tok);
        ix.positions.push_back(s.start_pos + i);
        ix.write_slots.push_back(slot_of(s.start_pos + i));
        ix.q_dst.push_back(si * ix.max_q + i);
        ix.token_slot_offset.push_back(si * ix.max_ctx);
        ix.token_ctx.push_back(s.start_pos + i + 1);
      }
      for (int64_t p = 0; p < end; ++p) ix.gather[static_cast<size_t>(si * ix.max_ctx + p)] = slot_of(p);
      ix.start.push_back(s.start_pos);
      ix.ctx_len.push_back(end);
      if (s.want_logits) ix.logit_rows.push_back(static_cast<int64_t>(ix.tokens.size()) - 1);
    }
    return ix;
  }

  torch::Tensor to_device(std::vector<int64_t>& v) const {
    // from_blob does not copy; .to(device) copies for CUDA and is a no-op view for CPU, which
    // is fine because `v` outlives this step.
    return torch::from_blob(v.data(), {static_cast<int64_t>(v.size())}, torch::kInt64).to(device_);
  }

  torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight) const {
    torch::Tensor xf = x.to(torch::kFloat32);
    torch::Tensor inv = torch::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + hp_.rms_eps);
    return (xf * inv * weight).to(dtype_);
  }

  // x: [T, heads, hd] in rotate_half layout; cos/sin: [T, 1, hd/2].
  static torch::Tensor rope(const torch::Tensor& x, const torch::Tensor& cos,
                            const torch::Tensor& sin) {
    const int64_t half = x.size(-1) / 2;
    torch::Tensor x1 = x.narrow(-1, 0, half);
    torch::Tensor x2 = x.narrow(-1, half, half);
    return torch::cat({x1 * cos - x2 * sin, x2 * cos + x1 * sin}, -1);
  }

  StepOutput forward(const StepBatch& batch) {
    StepIndex ix = build_index(batch);
    const int64_t S = ix.S, T = ix.T, max_q = ix.max_q, max_ctx = ix.max_ctx;
    const int64_t H = hp_.n_heads, KVH = hp_.n_kv_heads, HD = hp_.head_dim, G = H / KVH;

    torch::Tensor tokens = to_device(ix.tokens);
    torch::Tensor positions = to_device(ix.positions);
    torch::Tensor write_slots = to_device(ix.write_slots);
    torch::Tensor q_dst = to_device(ix.q_dst);
    torch::Tensor gather = to_device(ix.gather);
    torch::Tensor start = to_device(ix.start);
    torch::Tensor ctx_len = to_device(ix.ctx_len);

    torch::Tensor cos = rope_cos_.index_select(0, positions).unsqueeze(1);
    torch::Tensor sin = rope_sin_.index_select(0, positions).unsqueeze(1);

    // Key j is visible to query i of sequence s iff j <= start[s] + i and j < ctx_len[s].
    // Padded query rows (i >= n_new) still see key 0, so no row is all -inf.
    const auto idx_opts = torch::TensorOptions().dtype(torch::kInt64).device(device_);
    torch::Tensor key_pos = torch::arange(max_ctx, idx_opts).view({1, 1, max_ctx});
    torch::Tensor query_pos = start.view({S, 1, 1}) + torch::arange(max_q, idx_opts).view({1, max_q, 1});
    torch::Tensor blocked = (key_pos > query_pos).logical_or(key_pos >= ctx_len.view({S, 1, 1}))
                                .view({S, 1, 1, max_q, max_ctx});
    const double scale = 1.0 / std::sqrt(static_cast<double>(HD));

    torch::Tensor x = embedding_.index_select(0, tokens);  // [T, dim]
    for (size_t l = 0; l < layers_.size(); ++l) {
      const LayerParams& p = layers_[l];
      torch::Tensor h = rms_norm(x, p.attn_norm);
      torch::Tensor qkv = p.bqkv.defined() ? torch::linear(h, p.wqkv, p.bqkv) : torch::linear(h, p.wqkv);
      torch::Tensor q = rope(qkv.narrow(1, 0, H * HD).view({T, H, HD}), cos, sin);
      torch::Tensor k = rope(qkv.narrow(1, H * HD, KVH * HD).view({T, KVH, HD}), cos, sin);
      torch::Tensor v = qkv.narrow(1, (H + KVH) * HD, KVH * HD).reshape({T, KVH, HD});

      k_pool_[l].index_copy_(0, write_slots, k);
      v_pool_[l].index_copy_(0, write_slots, v);

      // [S, KVH, max_ctx, HD]
      torch::Tensor kc = k_pool_[l].index_select(0, gather).view({S, max_ctx, KVH, HD}).permute({0, 2, 1, 3});
      torch::Tensor vc = v_pool_[l].index_select(0, gather).view({S, max_ctx, KVH, HD}).permute({0, 2, 1, 3});
      // Queries padded to [S, max_q, H, HD], then the G heads of each KV head folded into rows:
      // [S, KVH, G * max_q, HD].
      torch::Tensor qp = torch::zeros({S * max_q, H, HD}, q.options()).index_copy_(0, q_dst, q);
      qp = qp.view({S, max_q, KVH, G, HD}).permute({0, 2, 3, 1, 4}).reshape({S, KVH, G * max_q, HD});

      torch::Tensor scores = torch::matmul(qp, kc.transpose(-1, -2)).to(torch::kFloat32) * scale;
      scores = scores.view({S, KVH, G, max_q, max_ctx}).masked_fill(blocked, -INFINITY);
      torch::Tensor probs = torch::softmax(scores, -1).to(dtype_).view({S, KVH, G * max_q, max_ctx});
      torch::Tensor attn = torch::matmul(probs, vc)                           // [S, KVH, G*max_q, HD]
                               .view({S, KVH, G, max_q, HD})
                               .permute({0, 3, 1, 2, 4})                      // [S, max_q, KVH, G, HD]
                               .reshape({S * max_q, H * HD})
                               .index_select(0, q_dst);                       // [T, H*HD]
      x = x + torch::linear(attn, p.wo);

      h = rms_norm(x, p.ffn_norm);
      torch::Tensor gate_up = torch::linear(h, p.w13);
      const int64_t F = hp_.hidden_dim;
      torch::Tensor act = torch::silu(gate_up.narrow(1, 0, F)) * gate_up.narrow(1, F, F);
      x = x + torch::linear(act, p.w2);
    }

    StepOutput out;
    out.rows = static_cast<int>(ix.logit_rows.size());
    if (out.rows == 0) return out;
    torch::Tensor rows = to_device(ix.logit_rows);
    torch::Tensor last = rms_norm(x.index_select(0, rows), final_norm_);
    torch::Tensor logits = torch::linear(last, wcls_).to(torch::kCPU, torch::kFloat32).contiguous();
    out.logits.assign(logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel());
    return out;
  }

  // The CPU float32 step: matmuls through libtorch (BLAS), everything else in cpu_kernels.hpp,
  // attention straight from the paged pools (no gather, no padding, no mask).
  StepOutput forward_cpu(const StepBatch& batch) {
    StepIndex ix = build_index(batch);
    const int64_t T = ix.T;
    const int64_t H = hp_.n_heads, KVH = hp_.n_kv_heads, HD = hp_.head_dim, D = hp_.dim;
    const int64_t F = hp_.hidden_dim;
    const float eps = static_cast<float>(hp_.rms_eps);
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(HD)));
    const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);

    torch::Tensor x = embedding_.index_select(0, to_device(ix.tokens));  // [T, D], the residual
    torch::Tensor h = torch::empty({T, D}, f32);
    torch::Tensor qkv = torch::empty({T, (H + 2 * KVH) * HD}, f32);
    torch::Tensor attn = torch::empty({T, H * HD}, f32);
    torch::Tensor gate_up = torch::empty({T, 2 * F}, f32);
    torch::Tensor act = torch::empty({T, F}, f32);
    for (size_t l = 0; l < layers_.size(); ++l) {
      const LayerParams& p = layers_[l];
      cpu::rms_norm(x.data_ptr<float>(), p.attn_norm.data_ptr<float>(), h.data_ptr<float>(), T, D, eps);
      parallel_addmm(qkv, h, p.wqkv_t, p.bqkv);
      cpu::rope_and_store_kv(qkv.data_ptr<float>(), T, H, KVH, HD, block_size_, ix.positions.data(),
                             ix.write_slots.data(),
                             rope_cos_.data_ptr<float>(), rope_sin_.data_ptr<float>(),
                             k_pool_[l].data_ptr<float>(), v_pool_[l].data_ptr<float>());
      cpu::paged_attention(qkv.data_ptr<float>(), (H + 2 * KVH) * HD, T, H, KVH, HD, block_size_,
                           k_pool_[l].data_ptr<float>(),
                           v_pool_[l].data_ptr<float>(), ix.gather.data(), ix.token_slot_offset.data(),
                           ix.token_ctx.data(), scale, attn.data_ptr<float>());
      parallel_addmm(x, attn, p.wo_t, {}, 1.0);
      cpu::rms_norm(x.data_ptr<float>(), p.ffn_norm.data_ptr<float>(), h.data_ptr<float>(), T, D, eps);
      parallel_addmm(gate_up, h, p.w13_t);
      cpu::swiglu(gate_up.data_ptr<float>(), act.data_ptr<float>(), T, F);
      parallel_addmm(x, act, p.w2_t, {}, 1.0);
    }

    StepOutput out;
    const int64_t rows = static_cast<int64_t>(ix.logit_rows.size());
    out.rows = static_cast<int>(rows);
    if (rows == 0) return out;
    torch::Tensor last = rows == T ? x : x.index_select(0, to_device(ix.logit_rows));
    torch::Tensor normed = torch::empty({rows, D}, f32);
    cpu::rms_norm(last.data_ptr<float>(), final_norm_.data_ptr<float>(), normed.data_ptr<float>(), rows, D, eps);
    out.logits.resize(static_cast<size_t>(rows * hp_.vocab_size));
    torch::Tensor logits = torch::from_blob(out.logits.data(), {rows, hp_.vocab_size}, f32);
    parallel_addmm(logits, normed, wcls_t_);
    return out;
  }

  LlamaHyperParams hp_;
  ModelInfo info_;
  torch::Device device_;
  torch::ScalarType dtype_;
  int block_size_;
  int num_blocks_;
  torch::Tensor embedding_, wcls_, wcls_t_, final_norm_, rope_cos_, rope_sin_;
  bool cpu_kernels_ = false;
  std::vector<LayerParams> layers_;
  // Per layer. V: [num_blocks * bs, KVH, HD]. K: the same, or [num_blocks, KVH, HD, bs] for
  // the CPU kernels.
  std::vector<torch::Tensor> k_pool_, v_pool_;
};

}  // namespace

std::unique_ptr<ModelRunner> make_llama_model(LlamaWeights&& weights, const RunnerOptions& options) {
  try {
    c10::InferenceMode inference_guard;
    return std::make_unique<LlamaModel>(std::move(weights), options);
  } catch (const c10::Error& e) {
    throw std::runtime_error(std::string("llm model: cannot build the model: ") +
                             e.what_without_backtrace());
  }
}

}  // namespace talkserve::llm::detail
