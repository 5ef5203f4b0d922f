#pragma once
// Float32 CPU kernels for the parts of Whisper's encoder that are not matmuls: row softmax and
// exact (erf) GELU over plain arrays, vectorised (AVX2+FMA when the CPU has it, picked per
// call) and parallelised with at::parallel_for.
//
// Why: Debian's libtorch 1.13 runs softmax and GELU element by element here; over the
// encoder's 6 x 1500 x 1500 attention scores per layer they cost as much as the matmuls.
// The vector helpers (exp_poly, softmax_inplace) are the LLM's (llm/model/cpu_kernels.hpp).

#include <vector>

#include "llm/model/cpu_kernels.hpp"

namespace talkserve::speech::detail::cpu {

using llm::detail::cpu::exp_poly;
using llm::detail::cpu::kLanes;
using llm::detail::cpu::softmax_inplace;
using llm::detail::cpu::vload;
using llm::detail::cpu::vsplat;
using llm::detail::cpu::vstore;
using llm::detail::cpu::vsum_lanes;

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"

// erf(x) by Abramowitz & Stegun 7.1.26 (absolute error <= 1.5e-7), odd-extended.
template <typename V>
TALKSERVE_ALWAYS_INLINE inline V erf_poly(V x) {
  const V ax = x < 0.0f ? -x : x;
  const V t = 1.0f / (1.0f + 0.3275911f * ax);
  V p = t * 1.061405429f - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  const V y = 1.0f - p * t * exp_poly(V{} - ax * ax);
  return x < 0.0f ? -y : y;
}

template <typename V>
TALKSERVE_ALWAYS_INLINE inline void gelu_span(float* x, int64_t n) {
  constexpr int L = kLanes<V>;
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    const V v = vload<V>(x + i);
    vstore(x + i, 0.5f * v * (1.0f + erf_poly(v * 0.70710678118654752f)));
  }
  for (; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + erf_poly(x[i] * 0.70710678118654752f));
}

template <typename V>
TALKSERVE_ALWAYS_INLINE inline void softmax_span(float* x, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; ++r) softmax_inplace<V>(x + r * n, n);
}

// out[n * ld + v] = x[n] . w[v] for the rows v in [v0, v1): two rows of x and four of w at a
// time, eight independent multiply-add chains, each row of w read once per pair of x rows.
template <typename V>
TALKSERVE_ALWAYS_INLINE inline void project_span(const float* x, int64_t N, const float* w, int64_t K,
                                                 float* out, int64_t ld, int64_t v0, int64_t v1) {
  constexpr int L = kLanes<V>;
  const int64_t body = K / L * L;
  const auto dot = [&](const float* a, const float* b) {
    V acc{};
    for (int64_t k = 0; k < body; k += L) acc += vload<V>(a + k) * vload<V>(b + k);
    float s = vsum_lanes(acc);
    for (int64_t k = body; k < K; ++k) s += a[k] * b[k];
    return s;
  };
  int64_t v = v0;
  for (; v + 4 <= v1; v += 4) {
    const float* w0 = w + v * K;
    int64_t n = 0;
    for (; n + 2 <= N; n += 2) {
      const float* xa = x + n * K;
      const float* xb = xa + K;
      V a0{}, a1{}, a2{}, a3{}, b0{}, b1{}, b2{}, b3{};
      for (int64_t k = 0; k < body; k += L) {
        const V xv = vload<V>(xa + k), yv = vload<V>(xb + k);
        const V r0 = vload<V>(w0 + k), r1 = vload<V>(w0 + K + k), r2 = vload<V>(w0 + 2 * K + k),
                r3 = vload<V>(w0 + 3 * K + k);
        a0 += xv * r0, a1 += xv * r1, a2 += xv * r2, a3 += xv * r3;
        b0 += yv * r0, b1 += yv * r1, b2 += yv * r2, b3 += yv * r3;
      }
      const V* acc[8] = {&a0, &a1, &a2, &a3, &b0, &b1, &b2, &b3};
      for (int j = 0; j < 8; ++j) {
        const float* xr = j < 4 ? xa : xb;
        const float* wr = w0 + (j % 4) * K;
        float s = vsum_lanes(*acc[j]);
        for (int64_t k = body; k < K; ++k) s += xr[k] * wr[k];
        out[(n + j / 4) * ld + v + j % 4] = s;
      }
    }
    for (; n < N; ++n) {
      for (int j = 0; j < 4; ++j) out[n * ld + v + j] = dot(x + n * K, w0 + j * K);
    }
  }
  for (; v < v1; ++v) {
    for (int64_t n = 0; n < N; ++n) out[n * ld + v] = dot(x + n * K, w + v * K);
  }
}

// One query head against `len` positions of one K/V head (rows of hd floats, hd % L == 0):
// out = softmax(q . K^T) V, scores in `scratch` (len floats). q is already scaled.
template <typename V>
TALKSERVE_ALWAYS_INLINE inline void attend_head(const float* q, const float* k, const float* v, int64_t len,
                                                int64_t hd, float* scratch, float* out) {
  constexpr int L = kLanes<V>;
  for (int64_t p = 0; p < len; ++p) {
    const float* kp = k + p * hd;
    V acc{};
    for (int64_t i = 0; i < hd; i += L) acc += vload<V>(q + i) * vload<V>(kp + i);
    scratch[p] = vsum_lanes(acc);
  }
  softmax_inplace<V>(scratch, len);
  for (int64_t i = 0; i < hd; i += L) vstore(out + i, V{});
  for (int64_t p = 0; p < len; ++p) {
    const V w = vsplat<V>(scratch[p]);
    const float* vp = v + p * hd;
    for (int64_t i = 0; i < hd; i += L) vstore(out + i, vload<V>(out + i) + w * vload<V>(vp + i));
  }
}

struct AttendArgs {
  const float* q;        // [N, H, hd]
  const float* k;        // [slots, H, cap, hd]
  const float* v;        // same layout as k
  const int64_t* slot;   // K/V slot of row n
  const int64_t* len;    // positions of row n
  int64_t H, hd, cap, max_len;
  float* out;            // [N, H, hd]
};

template <typename V>
TALKSERVE_ALWAYS_INLINE inline void attend_span(const AttendArgs& a, int64_t begin, int64_t end) {
  std::vector<float> scratch(static_cast<std::size_t>(a.max_len));
  for (int64_t i = begin; i < end; ++i) {
    const int64_t n = i / a.H, h = i % a.H;
    const int64_t base = (a.slot[n] * a.H + h) * a.cap * a.hd;
    attend_head<V>(a.q + i * a.hd, a.k + base, a.v + base, a.len[n], a.hd, scratch.data(), a.out + i * a.hd);
  }
}

#ifdef TALKSERVE_CPU_AVX2_DISPATCH
__attribute__((target("avx2,fma"))) inline void attend_avx2(const AttendArgs& a, int64_t begin, int64_t end) {
  attend_span<llm::detail::cpu::f8>(a, begin, end);
}
__attribute__((target("avx2,fma"))) inline void project_avx2(const float* x, int64_t N, const float* w, int64_t K,
                                                             float* out, int64_t ld, int64_t v0, int64_t v1) {
  project_span<llm::detail::cpu::f8>(x, N, w, K, out, ld, v0, v1);
}
__attribute__((target("avx2,fma"))) inline void gelu_avx2(float* x, int64_t n) {
  gelu_span<llm::detail::cpu::f8>(x, n);
}
__attribute__((target("avx2,fma"))) inline void softmax_avx2(float* x, int64_t rows, int64_t n) {
  softmax_span<llm::detail::cpu::f8>(x, rows, n);
}
#endif

// x[i] = gelu(x[i]) (exact form, 0.5 x (1 + erf(x / sqrt 2))) over n floats.
inline void gelu_inplace(float* x, int64_t n) {
  at::parallel_for(0, n, 1 << 15, [&](int64_t begin, int64_t end) {
#ifdef TALKSERVE_CPU_AVX2_DISPATCH
    if (llm::detail::cpu::cpu_has_avx2_fma()) return gelu_avx2(x + begin, end - begin);
#endif
    gelu_span<llm::detail::cpu::f4>(x + begin, end - begin);
  });
}

// out [N, Vn] = x [N, K] . w [Vn, K]^T: a few rows against a large matrix (the vocabulary
// projection of a decoding step). BLAS packs all of w on every call for such shapes; this
// streams it once, split across threads by rows of w.
inline void project_rows(const float* x, int64_t N, const float* w, int64_t Vn, int64_t K, float* out) {
  at::parallel_for(0, (Vn + 63) / 64, 16, [&](int64_t begin, int64_t end) {
    const int64_t v0 = begin * 64, v1 = std::min(Vn, end * 64);
#ifdef TALKSERVE_CPU_AVX2_DISPATCH
    if (llm::detail::cpu::cpu_has_avx2_fma()) return project_avx2(x, N, w, K, out, Vn, v0, v1);
#endif
    project_span<llm::detail::cpu::f4>(x, N, w, K, out, Vn, v0, v1);
  });
}

// Decoder attention of N single-token rows straight from the slot buffers: row n, head h
// attends the first len[n] positions of K/V slot slot[n]. One (row, head) per work item; no
// gather, no padding, no mask (libtorch's bmm would issue one small GEMM per row and head).
// hd must be a multiple of 8.
inline void attend_rows(const AttendArgs& a, int64_t N) {
  at::parallel_for(0, N * a.H, 4, [&](int64_t begin, int64_t end) {
#ifdef TALKSERVE_CPU_AVX2_DISPATCH
    if (llm::detail::cpu::cpu_has_avx2_fma()) return attend_avx2(a, begin, end);
#endif
    attend_span<llm::detail::cpu::f4>(a, begin, end);
  });
}

// Softmax of each of `rows` rows of n finite floats, in place.
inline void softmax_rows(float* x, int64_t rows, int64_t n) {
  at::parallel_for(0, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(n, 1)), [&](int64_t begin, int64_t end) {
#ifdef TALKSERVE_CPU_AVX2_DISPATCH
    if (llm::detail::cpu::cpu_has_avx2_fma()) return softmax_avx2(x + begin * n, end - begin, n);
#endif
    softmax_span<llm::detail::cpu::f4>(x + begin * n, end - begin, n);
  });
}

#pragma GCC diagnostic pop

}  // namespace talkserve::speech::detail::cpu
