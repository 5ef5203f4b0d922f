#pragma once
// Hand-written float32 CPU kernels for the parts of a Llama step that are not matmuls.
//
// Why: at decode sizes (one new token per sequence, a small model) the step is dominated by
// libtorch's per-op cost, not by arithmetic. On CPU, libtorch 1.13's bmm over many small
// matrices dispatches one select + gemm per matrix (thousands of ops per step for 64
// sequences), and a gather of every sequence's context out of the paged pool copies megabytes
// per layer. These kernels read the paged KV pool in place and do each non-matmul stage in one
// pass over plain arrays, parallelised with at::parallel_for (so they honour
// at::set_num_threads). The libtorch path in llama_model.cpp stays for CUDA and half dtypes.
//
// All pointers are to contiguous row-major float32 data. Internal to src/llm/model.

#include <ATen/Parallel.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace talkserve::llm::detail::cpu {

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define TALKSERVE_CPU_CLONES static __attribute__((target_clones("arch=haswell", "default")))
#else
#define TALKSERVE_CPU_CLONES static
#endif
#define TALKSERVE_ALWAYS_INLINE __attribute__((always_inline))

// out[r] = x[r] * rsqrt(mean(x[r]^2) + eps) * weight, for `rows` rows of `dim`.
inline void rms_norm(const float* x, const float* weight, float* out, int64_t rows, int64_t dim,
                     float eps) {
  at::parallel_for(0, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(dim, 1)),
                   [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* xr = x + r * dim;
      float* o = out + r * dim;
      float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};  // 8 partial sums: vectorisable
      int64_t j = 0;
      for (; j + 8 <= dim; j += 8) {
        for (int l = 0; l < 8; ++l) lanes[l] += xr[j + l] * xr[j + l];
      }
      float ss = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
      for (; j < dim; ++j) ss += xr[j] * xr[j];
      const float inv = 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
      for (j = 0; j < dim; ++j) o[j] = xr[j] * inv * weight[j];
    }
  });
}

// The CPU path's KV layout. V: [slots, KVH, HD] (slot = block * bs + offset), so a
// position's head is a contiguous HD-vector for the probability-weighted sum. K:
// [blocks, KVH, HD, bs], so for one head the bs positions of a block are contiguous per
// dimension and q.k vectorises across positions (with small head_dim, a per-position dot
// product would be a short horizontal reduction).

// qkv: [T, (H + 2 * KVH) * HD] rows, q heads then k heads then v heads, rotate_half layout.
// Rotates q in place; writes rotated k and plain v at slot write_slots[t] of the pools.
// cos/sin: [max_len, HD / 2], indexed by positions[t].
inline void rope_and_store_kv(float* qkv, int64_t T, int64_t H, int64_t KVH, int64_t HD, int64_t bs,
                              const int64_t* positions, const int64_t* write_slots,
                              const float* cos_table, const float* sin_table, float* k_pool,
                              float* v_pool) {
  const int64_t half = HD / 2;
  const int64_t row = (H + 2 * KVH) * HD;
  at::parallel_for(0, T, std::max<int64_t>(1, 8192 / row), [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      float* r = qkv + t * row;
      const float* c = cos_table + positions[t] * half;
      const float* s = sin_table + positions[t] * half;
      for (int64_t h = 0; h < H; ++h) {
        float* x = r + h * HD;
        for (int64_t i = 0; i < half; ++i) {
          const float x1 = x[i], x2 = x[i + half];
          x[i] = x1 * c[i] - x2 * s[i];
          x[i + half] = x2 * c[i] + x1 * s[i];
        }
      }
      const int64_t block = write_slots[t] / bs, offset = write_slots[t] % bs;
      for (int64_t h = 0; h < KVH; ++h) {
        const float* x = r + (H + h) * HD;
        float* kd = k_pool + (block * KVH + h) * HD * bs + offset;
        for (int64_t i = 0; i < half; ++i) {
          const float x1 = x[i], x2 = x[i + half];
          kd[i * bs] = x1 * c[i] - x2 * s[i];
          kd[(i + half) * bs] = x2 * c[i] + x1 * s[i];
        }
      }
      const float* vr = r + (H + KVH) * HD;
      std::copy(vr, vr + KVH * HD, v_pool + write_slots[t] * KVH * HD);
    }
  });
}

// exp(x) for a contiguous array, written so that GCC/Clang vectorise it (no libm call per
// element): Cephes' expf polynomial (max rel. error ~2e-7, like libm's float exp) after the
// range reduction x = n ln2 + r, |r| <= ln2 / 2. Inputs are clamped to [-87, 88], so the
// result stays a normal float (exp(-87) ~ 1.6e-38 stands in for 0).
TALKSERVE_ALWAYS_INLINE inline void exp_inplace(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    // Clamp to [-87, 88] on the bit pattern: as unsigned, a positive float above 88 compares
    // greater than 88's bits, a negative one below -87 greater than -87's bits. Integer
    // selects vectorise; float compares would not without -ffast-math.
    uint32_t u = std::bit_cast<uint32_t>(x[i]);
    const uint32_t limit = (u & 0x80000000u) != 0 ? 0xC2AE0000u : 0x42B00000u;  // -87 : 88
    u = u > limit ? limit : u;
    const float v = std::bit_cast<float>(u);
    // Round-to-nearest of v * log2(e) through the 1.5 * 2^23 shifter.
    const float shifted = v * 1.44269504088896341f + 12582912.0f;
    const float k = shifted - 12582912.0f;
    const float pow2 = std::bit_cast<float>((std::bit_cast<int32_t>(shifted) - 0x4B400000 + 127) << 23);
    const float r = v - k * 0.693359375f + k * 2.12194440e-4f;  // v - k ln2, in two parts
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    x[i] = (p * r * r + r + 1.0f) * pow2;
  }
}

// max and sum with 8 partial results, vectorisable without -ffast-math (a single running
// max/sum is a serial dependency the compiler may not reorder).
TALKSERVE_ALWAYS_INLINE inline float max_of(const float* x, int64_t n) {
  float lanes[8];
  for (int l = 0; l < 8; ++l) lanes[l] = x[0];
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int l = 0; l < 8; ++l) lanes[l] = lanes[l] > x[i + l] ? lanes[l] : x[i + l];
  }
  float m = lanes[0];
  for (int l = 1; l < 8; ++l) m = std::max(m, lanes[l]);
  for (; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

TALKSERVE_ALWAYS_INLINE inline float sum_of(const float* x, int64_t n) {
  float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int l = 0; l < 8; ++l) lanes[l] += x[i + l];
  }
  float tail = 0.0f;
  for (; i < n; ++i) tail += x[i];
  return ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7])) +
         tail;
}

// Numerically stable softmax of n >= 1 finite values, in place.
TALKSERVE_ALWAYS_INLINE inline void softmax_inplace(float* x, int64_t n) {
  const float mx = max_of(x, n);
  for (int64_t j = 0; j < n; ++j) x[j] -= mx;
  exp_inplace(x, n);
  const float inv = 1.0f / sum_of(x, n);
  for (int64_t j = 0; j < n; ++j) x[j] *= inv;
}

// Causal attention for T query tokens straight from the paged pools (layout above).
//   q: row t at q + t * q_stride, H heads of HD; query head h reads KV head h / (H / KVH).
//   Token t sees keys at positions [0, ctx_len[t]); position j of its sequence lives in slot
//   slots[slot_offset[t] + j] (block = slot / bs; positions of a block are consecutive).
//   out: [T, H * HD].
// One token per work item.
struct AttentionArgs {
  const float* q;
  int64_t q_stride, T, H, KVH, HD, bs;
  const float* k_pool;
  const float* v_pool;
  const int64_t* slots;
  const int64_t* slot_offset;
  const int64_t* ctx_len;
  float scale;
  float* out;
};

// Tokens [begin, end), one at a time.
template <int HD_FIXED, int BS_FIXED>
TALKSERVE_ALWAYS_INLINE inline void attend_tokens(const AttentionArgs& a, int64_t begin, int64_t end) {
  const int64_t HD = HD_FIXED > 0 ? HD_FIXED : a.HD;
  const int64_t bs = BS_FIXED > 0 ? BS_FIXED : a.bs;
  const int64_t H = a.H, KVH = a.KVH, G = H / KVH;
  const float* q = a.q;
  const int64_t q_stride = a.q_stride;
  const float* k_pool = a.k_pool;
  const float* v_pool = a.v_pool;
  const float scale = a.scale;
  float* out = a.out;
  std::vector<float> scores, qs(static_cast<size_t>(H * HD));
  for (int64_t t = begin; t < end; ++t) {
    const int64_t n = a.ctx_len[t];
    const int64_t blocks = (n + bs - 1) / bs;
    const int64_t padded = blocks * bs;
    const int64_t* sl = a.slots + a.slot_offset[t];
    scores.resize(static_cast<size_t>(H * padded));
    float* sc = scores.data();  // [H, padded]
    const float* qt = q + t * q_stride;
    for (int64_t i = 0; i < H * HD; ++i) qs[static_cast<size_t>(i)] = qt[i] * scale;
    // scores[h, b * bs + p] = q_h . K[block b, h / G, :, p], vectorised over p. Blocks outer,
    // heads inner: each block's K ([KVH, HD, bs], contiguous) is streamed once. Positions
    // past n in the last block hold other data and are never read after this.
    for (int64_t b = 0; b < blocks; ++b) {
      const float* kblock = k_pool + (sl[b * bs] / bs) * KVH * HD * bs;
      for (int64_t h = 0; h < H; ++h) {
        const float* kb = kblock + (h / G) * HD * bs;
        const float* qh = qs.data() + h * HD;
        if constexpr (BS_FIXED > 0) {
          float acc[BS_FIXED];  // stays in registers
          for (int p = 0; p < BS_FIXED; ++p) acc[p] = qh[0] * kb[p];
          for (int64_t i = 1; i < HD; ++i) {
            for (int p = 0; p < BS_FIXED; ++p) acc[p] += qh[i] * kb[i * BS_FIXED + p];
          }
          std::copy(acc, acc + BS_FIXED, sc + h * padded + b * bs);
        } else {
          float* s = sc + h * padded + b * bs;
          for (int64_t p = 0; p < bs; ++p) s[p] = qh[0] * kb[p];
          for (int64_t i = 1; i < HD; ++i) {
            for (int64_t p = 0; p < bs; ++p) s[p] += qh[i] * kb[i * bs + p];
          }
        }
      }
    }
    for (int64_t h = 0; h < H; ++h) softmax_inplace(sc + h * padded, n);
    // out_h = sum_j p_h[j] V[j, h / G].
    float* o = out + t * H * HD;
    if constexpr (HD_FIXED > 0 && HD_FIXED <= 16) {
      // Small heads: one head at a time with the accumulator in registers (a sequence's V
      // rows are small enough to stay in L1 across the heads).
      for (int64_t h = 0; h < H; ++h) {
        const float* ph = sc + h * padded;
        const float* vbase = v_pool + (h / G) * HD_FIXED;
        float acc[HD_FIXED] = {};
        for (int64_t j = 0; j < n; ++j) {
          const float* vj = vbase + sl[j] * KVH * HD_FIXED;
          const float pj = ph[j];
          for (int i = 0; i < HD_FIXED; ++i) acc[i] += pj * vj[i];
        }
        std::copy(acc, acc + HD_FIXED, o + h * HD);
      }
    } else {
      // Large heads: stream each V row once, accumulating into the (L1-resident) output.
      std::fill(o, o + H * HD, 0.0f);
      for (int64_t j = 0; j < n; ++j) {
        const float* vrow = v_pool + sl[j] * KVH * HD;
        for (int64_t h = 0; h < H; ++h) {
          const float* __restrict vj = vrow + (h / G) * HD;
          float* __restrict oh = o + h * HD;
          const float pj = sc[h * padded + j];
          for (int64_t i = 0; i < HD; ++i) oh[i] += pj * vj[i];
        }
      }
    }
    }
}

// Compiled twice on x86-64 GCC (AVX2+FMA and baseline), picked at load time by the CPU.
TALKSERVE_CPU_CLONES void attend_range(const AttentionArgs& a, int64_t begin, int64_t end) {
  if (a.bs == 16) {
    switch (a.HD) {
      case 8: return attend_tokens<8, 16>(a, begin, end);
      case 16: return attend_tokens<16, 16>(a, begin, end);
      case 32: return attend_tokens<32, 16>(a, begin, end);
      case 64: return attend_tokens<64, 16>(a, begin, end);
      case 128: return attend_tokens<128, 16>(a, begin, end);
      default: return attend_tokens<0, 16>(a, begin, end);
    }
  }
  attend_tokens<0, 0>(a, begin, end);
}

inline void paged_attention(const float* q, int64_t q_stride, int64_t T, int64_t H, int64_t KVH,
                            int64_t HD, int64_t bs, const float* k_pool, const float* v_pool,
                            const int64_t* slots, const int64_t* slot_offset,
                            const int64_t* ctx_len, float scale, float* out) {
  const AttentionArgs args{q, q_stride, T, H, KVH, HD, bs, k_pool, v_pool, slots, slot_offset, ctx_len, scale, out};
  int64_t total_ctx = 0;
  for (int64_t t = 0; t < T; ++t) total_ctx += ctx_len[t];
  // Grain: ~64k multiply-adds per chunk, so small decode steps stay on one thread.
  const int64_t per_token = std::max<int64_t>(1, total_ctx / std::max<int64_t>(T, 1) * H * HD * 2);
  const int64_t grain = std::max<int64_t>(1, 65536 / per_token);
  at::parallel_for(0, T, grain, [&](int64_t begin, int64_t end) { attend_range(args, begin, end); });
}

// gate_up: [T, 2F] (gate then up) -> out: [T, F] = silu(gate) * up.
inline void swiglu(const float* gate_up, float* out, int64_t T, int64_t F) {
  at::parallel_for(0, T, std::max<int64_t>(1, 16384 / std::max<int64_t>(F, 1)),
                   [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const float* g = gate_up + t * 2 * F;
      const float* u = g + F;
      float* o = out + t * F;
      for (int64_t i = 0; i < F; ++i) o[i] = -g[i];
      exp_inplace(o, F);
      for (int64_t i = 0; i < F; ++i) o[i] = g[i] / (1.0f + o[i]) * u[i];
    }
  });
}

}  // namespace talkserve::llm::detail::cpu
