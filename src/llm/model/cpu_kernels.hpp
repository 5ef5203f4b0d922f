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

// SIMD values through the GCC/Clang vector extension, explicit so the kernels do not depend
// on the auto-vectoriser (which gives up on several of them without -ffast-math). The
// kernels are templates on the vector type: the AVX2 build of them uses 8 lanes (one AVX
// register), the baseline build 4 (one SSE register). They are always inlined into one of
// the two entry points at the end of this file, so no vector value crosses a call (hence
// -Wpsabi, which warns about such calls, is off for this header).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float f4 __attribute__((vector_size(16)));
typedef int32_t i4 __attribute__((vector_size(16)));
typedef float f8 __attribute__((vector_size(32)));
typedef int32_t i8 __attribute__((vector_size(32)));
template <typename V> struct IntVec;
template <> struct IntVec<f4> { using type = i4; };
template <> struct IntVec<f8> { using type = i8; };
template <> struct IntVec<float> { using type = int32_t; };
template <typename V> inline constexpr int kLanes = static_cast<int>(sizeof(V) / sizeof(float));

template <typename V>
TALKSERVE_ALWAYS_INLINE inline V vload(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <typename V>
TALKSERVE_ALWAYS_INLINE inline void vstore(float* p, V v) {
  std::memcpy(p, &v, sizeof v);
}
template <typename V>
TALKSERVE_ALWAYS_INLINE inline V vsplat(float x) {
  return V{} + x;
}
template <typename V>
TALKSERVE_ALWAYS_INLINE inline float vmax_lanes(V v) {
  float m = v[0];
  for (int l = 1; l < kLanes<V>; ++l) m = std::max(m, v[l]);
  return m;
}
template <typename V>
TALKSERVE_ALWAYS_INLINE inline float vsum_lanes(V v) {
  float s = 0.0f;
  for (int l = 0; l < kLanes<V>; ++l) s += v[l];
  return s;
}

// exp(x): Cephes' expf polynomial (max rel. error ~2e-7, like libm's float exp) after the
// range reduction x = n ln2 + r, |r| <= ln2 / 2. Inputs are clamped to [-87, 88], so the
// result stays a normal float (exp(-87) ~ 1.6e-38 stands in for 0). V is a vector or a
// plain float (a row's tail): the same expression either way.
template <typename V>
TALKSERVE_ALWAYS_INLINE inline V exp_poly(V x) {
  using I = typename IntVec<V>::type;
  const V lo = V{} - 87.0f, hi = V{} + 88.0f;
  x = x < lo ? lo : x;
  x = x > hi ? hi : x;
  // Round-to-nearest of x * log2(e) through the 1.5 * 2^23 shifter.
  const V shifted = x * 1.44269504088896341f + 12582912.0f;
  const V k = shifted - 12582912.0f;
  const V pow2 = std::bit_cast<V>((std::bit_cast<I>(shifted) - (0x4B400000 - 127)) << 23);
  const V r = x - k * 0.693359375f + k * 2.12194440e-4f;  // x - k ln2, in two parts
  V p = r * 1.9875691500e-4f + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  return (p * r * r + r + 1.0f) * pow2;
}

template <typename V>
TALKSERVE_ALWAYS_INLINE inline void exp_inplace(float* x, int64_t n) {
  constexpr int L = kLanes<V>;
  int64_t i = 0;
  for (; i + L <= n; i += L) vstore(x + i, exp_poly(vload<V>(x + i)));
  for (; i < n; ++i) x[i] = exp_poly(x[i]);
}

// Numerically stable softmax of n >= 1 finite values, in place.
template <typename V>
TALKSERVE_ALWAYS_INLINE inline void softmax_inplace(float* x, int64_t n) {
  constexpr int L = kLanes<V>;
  const int64_t body = n / L * L;
  float mx = x[0];
  if (body > 0) {
    V m = vload<V>(x);
    for (int64_t i = L; i < body; i += L) {
      const V v = vload<V>(x + i);
      m = v > m ? v : m;
    }
    mx = vmax_lanes(m);
  }
  for (int64_t i = body; i < n; ++i) mx = std::max(mx, x[i]);
  const V mxv = vsplat<V>(mx);
  V sum = {};
  for (int64_t i = 0; i < body; i += L) {
    const V e = exp_poly(vload<V>(x + i) - mxv);
    vstore(x + i, e);
    sum += e;
  }
  float tail = 0.0f;
  for (int64_t i = body; i < n; ++i) {
    x[i] = exp_poly(x[i] - mx);
    tail += x[i];
  }
  const float inv = 1.0f / (vsum_lanes(sum) + tail);
  const V invv = vsplat<V>(inv);
  for (int64_t i = 0; i < body; i += L) vstore(x + i, vload<V>(x + i) * invv);
  for (int64_t i = body; i < n; ++i) x[i] *= inv;
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

// scores[g, p] = q_g . K[:, p] for the NH query heads g that share one KV head, over the BS
// positions of one block (kb: [HD, BS]). Two heads at a time share every load of K and give
// the core independent multiply-add chains to overlap. Wide heads (HD >= 32) also split the
// dimensions into U interleaved partial sums, so a lone head (no GQA, NH = 1) still has
// 2 * W chains and the multiply-adds run at throughput, not at their latency.
template <typename V, int NH, int HD, int BS>
TALKSERVE_ALWAYS_INLINE inline void block_scores(const float* q, const float* kb, float* s, int64_t s_stride) {
  static_assert(BS % kLanes<V> == 0);
  constexpr int L = kLanes<V>, W = BS / L;
  constexpr int U = (HD >= 32 && NH * W <= 4) ? 2 : 1;
  static_assert(HD % U == 0);
  V acc[U][NH][W];  // stays in registers
  for (int u = 0; u < U; ++u) {
    for (int g = 0; g < NH; ++g) {
      const V q0 = vsplat<V>(q[g * HD + u]);
      for (int w = 0; w < W; ++w) acc[u][g][w] = q0 * vload<V>(kb + u * BS + L * w);
    }
  }
  for (int i = U; i < HD; i += U) {
    for (int u = 0; u < U; ++u) {
      V k[W];
      for (int w = 0; w < W; ++w) k[w] = vload<V>(kb + (i + u) * BS + L * w);
      for (int g = 0; g < NH; ++g) {
        const V qi = vsplat<V>(q[g * HD + i + u]);
        for (int w = 0; w < W; ++w) acc[u][g][w] += qi * k[w];
      }
    }
  }
  for (int g = 0; g < NH; ++g) {
    for (int w = 0; w < W; ++w) {
      V sum = acc[0][g][w];
      for (int u = 1; u < U; ++u) sum += acc[u][g][w];
      vstore(s + g * s_stride + L * w, sum);
    }
  }
}

// out_g = sum_j probs_g[j] V[j] for the NH query heads g of one KV head, over n positions.
// V row j of this KV head: vbase + slot(j) * row, with slot(j) = block_base(j / BS) + j % BS.
// Two positions per iteration, each head with its own accumulators: 2 * NH independent
// chains of vector multiply-adds, every V row loaded once for all NH heads. Small heads only
// (HD 8 or 16: the accumulators must fit in registers).
template <typename V, int NH, int HD, int BS>
TALKSERVE_ALWAYS_INLINE inline void weighted_values(const float* probs, int64_t p_stride, const float* vbase,
                                                    int64_t row, const int64_t* slots, int64_t n, float* out) {
  static_assert(HD % kLanes<V> == 0 && HD <= 16);
  constexpr int L = kLanes<V>, W = HD / L;
  V even[NH][W] = {}, odd[NH][W] = {};
  for (int64_t b0 = 0; b0 < n; b0 += BS) {
    const float* vblock = vbase + slots[b0] * row;  // the block's positions are consecutive slots
    const int64_t m = std::min<int64_t>(BS, n - b0);
    int64_t p = 0;
    for (; p + 2 <= m; p += 2) {
      V v0[W], v1[W];
      for (int w = 0; w < W; ++w) {
        v0[w] = vload<V>(vblock + p * row + L * w);
        v1[w] = vload<V>(vblock + (p + 1) * row + L * w);
      }
      for (int g = 0; g < NH; ++g) {
        const V w0 = vsplat<V>(probs[g * p_stride + b0 + p]), w1 = vsplat<V>(probs[g * p_stride + b0 + p + 1]);
        for (int w = 0; w < W; ++w) {
          even[g][w] += w0 * v0[w];
          odd[g][w] += w1 * v1[w];
        }
      }
    }
    if (p < m) {
      for (int g = 0; g < NH; ++g) {
        const V w0 = vsplat<V>(probs[g * p_stride + b0 + p]);
        for (int w = 0; w < W; ++w) even[g][w] += w0 * vload<V>(vblock + p * row + L * w);
      }
    }
  }
  for (int g = 0; g < NH; ++g) {
    for (int w = 0; w < W; ++w) vstore(out + g * HD + L * w, even[g][w] + odd[g][w]);
  }
}

// out_h = sum_j probs_h[j] V[j] for one query head of a wide KV head (HD a multiple of 32),
// over n positions: the head's dimensions in chunks of up to 64 floats, each chunk's sums
// held in registers (8 AVX2 vectors: 8 independent chains) while every position's V row
// streams past. V row j of the head: vbase + slot(j) * row, as in weighted_values.
template <typename V, int HD, int BS>
TALKSERVE_ALWAYS_INLINE inline void weighted_values_wide(const float* probs, const float* vbase, int64_t row,
                                                         const int64_t* slots, int64_t n, float* out) {
  constexpr int L = kLanes<V>, C = HD < 64 ? HD : 64, W = C / L;
  static_assert(HD % C == 0 && C % L == 0);
  for (int c = 0; c < HD; c += C) {
    V acc[W] = {};
    for (int64_t b0 = 0; b0 < n; b0 += BS) {
      const float* vblock = vbase + slots[b0] * row + c;
      const int64_t m = std::min<int64_t>(BS, n - b0);
      for (int64_t p = 0; p < m; ++p) {
        const V pj = vsplat<V>(probs[b0 + p]);
        const float* vr = vblock + p * row;
        for (int w = 0; w < W; ++w) acc[w] += pj * vload<V>(vr + L * w);
      }
    }
    for (int w = 0; w < W; ++w) vstore(out + c + L * w, acc[w]);
  }
}

// out[h] = sum_j probs[h, j] V[j, h / G] for all H heads of one token (probs: [H, p_stride]).
// Any head size: each V row is streamed once, accumulating into the (L1-resident) output.
TALKSERVE_ALWAYS_INLINE inline void stream_values(const AttentionArgs& a, int64_t HD, const float* probs,
                                                  int64_t p_stride, const int64_t* slots, int64_t n, float* o) {
  const int64_t H = a.H, KVH = a.KVH, G = H / KVH;
  std::fill(o, o + H * HD, 0.0f);
  for (int64_t j = 0; j < n; ++j) {
    const float* vrow = a.v_pool + slots[j] * KVH * HD;
    for (int64_t h = 0; h < H; ++h) {
      const float* __restrict vj = vrow + (h / G) * HD;
      float* __restrict oh = o + h * HD;
      const float pj = probs[h * p_stride + j];
      for (int64_t i = 0; i < HD; ++i) oh[i] += pj * vj[i];
    }
  }
}

// One token's view of its context and its working memory, reused from token to token: the
// context length n, its blocks, the score rows [H, padded] (padded = blocks * bs) and the
// query scaled by 1 / sqrt(head_dim).
struct TokenScratch {
  std::vector<float> scores, qs;
  int64_t n = 0, blocks = 0, padded = 0;
  const int64_t* slots = nullptr;  // the slot of each position of the token's sequence

  explicit TokenScratch(const AttentionArgs& a) : qs(static_cast<size_t>(a.H * a.HD)) {}

  void start(const AttentionArgs& a, int64_t t) {
    n = a.ctx_len[t];
    blocks = (n + a.bs - 1) / a.bs;
    padded = blocks * a.bs;
    slots = a.slots + a.slot_offset[t];
    scores.resize(static_cast<size_t>(a.H * padded));
    const float* qt = a.q + t * a.q_stride;
    for (int64_t i = 0; i < a.H * a.HD; ++i) qs[static_cast<size_t>(i)] = qt[i] * a.scale;
  }
};

// Asks for the first min(n, 1024) floats at p to be brought into cache (a hint: no fault,
// no effect on results).
TALKSERVE_ALWAYS_INLINE inline void prefetch_block(const float* p, int64_t n) {
  const int64_t lines = (std::min<int64_t>(n, 1024) + 15) / 16;
  for (int64_t i = 0; i < lines; ++i) __builtin_prefetch(p + i * 16);
}

// Tokens [begin, end), one at a time: the fixed-size kernels above (head_dim and block size
// known at compile time), query heads in pairs.
template <typename V, int HD, int BS>
TALKSERVE_ALWAYS_INLINE inline void attend_tokens_fixed(const AttentionArgs& a, int64_t begin, int64_t end) {
  const int64_t H = a.H, KVH = a.KVH, G = H / KVH;
  TokenScratch tok(a);
  for (int64_t t = begin; t < end; ++t) {
    tok.start(a, t);
    const int64_t n = tok.n, blocks = tok.blocks, padded = tok.padded;
    const int64_t* sl = tok.slots;
    float* sc = tok.scores.data();  // [H, padded]
    const std::vector<float>& qs = tok.qs;
    // Blocks outer, KV heads inner: each block's K ([KVH, HD, BS], contiguous) is streamed
    // once. Positions past n in the last block hold other data and are never read after this.
    // Each block is a few KB at a random place in the pool, too short for the hardware
    // prefetcher to ramp up: fetch the next block's K and this block's V (read by the
    // weighted sum below) while this block's scores are computed.
    const int64_t block_floats = KVH * HD * BS;
    for (int64_t b = 0; b < blocks; ++b) {
      const float* kblock = a.k_pool + (sl[b * BS] / BS) * block_floats;
      if (b + 1 < blocks) {
        prefetch_block(a.k_pool + (sl[(b + 1) * BS] / BS) * block_floats, block_floats);
      } else if (t + 1 < end) {  // the next token's first block
        prefetch_block(a.k_pool + (a.slots[a.slot_offset[t + 1]] / BS) * block_floats, block_floats);
      }
      prefetch_block(a.v_pool + (sl[b * BS] / BS) * block_floats, block_floats);
      for (int64_t kh = 0; kh < KVH; ++kh) {
        const float* kb = kblock + kh * HD * BS;
        int64_t h = kh * G;
        for (; h + 2 <= (kh + 1) * G; h += 2) {
          block_scores<V, 2, HD, BS>(qs.data() + h * HD, kb, sc + h * padded + b * BS, padded);
        }
        if (h < (kh + 1) * G) block_scores<V, 1, HD, BS>(qs.data() + h * HD, kb, sc + h * padded + b * BS, padded);
      }
    }
    for (int64_t h = 0; h < H; ++h) softmax_inplace<V>(sc + h * padded, n);
    float* o = a.out + t * H * HD;
    if constexpr (HD <= 16) {
      for (int64_t kh = 0; kh < KVH; ++kh) {
        const float* vbase = a.v_pool + kh * HD;
        int64_t h = kh * G;
        for (; h + 2 <= (kh + 1) * G; h += 2) {
          weighted_values<V, 2, HD, BS>(sc + h * padded, padded, vbase, KVH * HD, sl, n, o + h * HD);
        }
        if (h < (kh + 1) * G) weighted_values<V, 1, HD, BS>(sc + h * padded, padded, vbase, KVH * HD, sl, n, o + h * HD);
      }
    } else if constexpr (HD % 32 == 0) {
      for (int64_t h = 0; h < H; ++h) {
        weighted_values_wide<V, HD, BS>(sc + h * padded, a.v_pool + (h / G) * HD, KVH * HD, sl, n, o + h * HD);
      }
    } else {
      stream_values(a, HD, sc, padded, sl, n, o);
    }
  }
}

// Tokens [begin, end), one at a time, for any head_dim and block size.
template <typename V>
TALKSERVE_ALWAYS_INLINE inline void attend_tokens_any(const AttentionArgs& a, int64_t begin, int64_t end) {
  const int64_t HD = a.HD, bs = a.bs;
  const int64_t H = a.H, KVH = a.KVH, G = H / KVH;
  TokenScratch tok(a);
  for (int64_t t = begin; t < end; ++t) {
    tok.start(a, t);
    const int64_t n = tok.n, blocks = tok.blocks, padded = tok.padded;
    const int64_t* sl = tok.slots;
    float* sc = tok.scores.data();  // [H, padded]
    const std::vector<float>& qs = tok.qs;
    for (int64_t b = 0; b < blocks; ++b) {
      const float* kblock = a.k_pool + (sl[b * bs] / bs) * KVH * HD * bs;
      for (int64_t h = 0; h < H; ++h) {
        const float* kb = kblock + (h / G) * HD * bs;
        const float* qh = qs.data() + h * HD;
        float* s = sc + h * padded + b * bs;
        for (int64_t p = 0; p < bs; ++p) s[p] = qh[0] * kb[p];
        for (int64_t i = 1; i < HD; ++i) {
          for (int64_t p = 0; p < bs; ++p) s[p] += qh[i] * kb[i * bs + p];
        }
      }
    }
    for (int64_t h = 0; h < H; ++h) softmax_inplace<V>(sc + h * padded, n);
    stream_values(a, HD, sc, padded, sl, n, a.out + t * H * HD);
  }
}

template <typename V>
TALKSERVE_ALWAYS_INLINE inline void attend_dispatch(const AttentionArgs& a, int64_t begin, int64_t end) {
  if (a.bs == 16) {
    switch (a.HD) {
      case 8: return attend_tokens_fixed<V, 8, 16>(a, begin, end);
      case 16: return attend_tokens_fixed<V, 16, 16>(a, begin, end);
      case 32: return attend_tokens_fixed<V, 32, 16>(a, begin, end);
      case 64: return attend_tokens_fixed<V, 64, 16>(a, begin, end);
      case 128: return attend_tokens_fixed<V, 128, 16>(a, begin, end);
      default: break;
    }
  }
  attend_tokens_any<V>(a, begin, end);
}

// silu(gate) * up for rows [begin, end) of gate_up: [T, 2F] (gate then up) -> out: [T, F].
template <typename V>
TALKSERVE_ALWAYS_INLINE inline void swiglu_rows(const float* gate_up, float* out, int64_t F, int64_t begin,
                                                int64_t end) {
  constexpr int L = kLanes<V>;
  for (int64_t t = begin; t < end; ++t) {
    const float* g = gate_up + t * 2 * F;
    const float* u = g + F;
    float* o = out + t * F;
    int64_t i = 0;
    for (; i + L <= F; i += L) {
      const V gv = vload<V>(g + i);
      vstore(o + i, gv / (1.0f + exp_poly(-gv)) * vload<V>(u + i));
    }
    for (; i < F; ++i) o[i] = g[i] / (1.0f + exp_poly(-g[i])) * u[i];
  }
}

// The entry points. On x86-64 the kernels are compiled twice, for AVX2+FMA (8 lanes) and for
// the baseline (4 lanes, SSE), and picked per call from the CPU's feature bits. (Feature
// bits, not target_clones("arch=haswell"): GCC dispatches an arch= clone on the CPU model,
// so AMD cores got the baseline.) Elsewhere the 4-lane build is the only one.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define TALKSERVE_CPU_AVX2_DISPATCH 1
__attribute__((target("avx2,fma"))) inline void attend_range_avx2(const AttentionArgs& a, int64_t begin, int64_t end) {
  attend_dispatch<f8>(a, begin, end);
}
__attribute__((target("avx2,fma"))) inline void swiglu_range_avx2(const float* gate_up, float* out, int64_t F,
                                                                  int64_t begin, int64_t end) {
  swiglu_rows<f8>(gate_up, out, F, begin, end);
}
inline bool cpu_has_avx2_fma() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
}
#endif

inline void attend_range(const AttentionArgs& a, int64_t begin, int64_t end) {
#ifdef TALKSERVE_CPU_AVX2_DISPATCH
  if (cpu_has_avx2_fma()) return attend_range_avx2(a, begin, end);
#endif
  attend_dispatch<f4>(a, begin, end);
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
#ifdef TALKSERVE_CPU_AVX2_DISPATCH
    if (cpu_has_avx2_fma()) return swiglu_range_avx2(gate_up, out, F, begin, end);
#endif
    swiglu_rows<f4>(gate_up, out, F, begin, end);
  });
}

#pragma GCC diagnostic pop

}  // namespace talkserve::llm::detail::cpu
