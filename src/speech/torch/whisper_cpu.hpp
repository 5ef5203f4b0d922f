#pragma once
// Float32 CPU kernels for the parts of Whisper's encoder that are not matmuls: row softmax and
// exact (erf) GELU over plain arrays, vectorised (AVX2+FMA when the CPU has it, picked per
// call) and parallelised with at::parallel_for.
//
// Why: Debian's libtorch 1.13 runs softmax and GELU element by element here; over the
// encoder's 6 x 1500 x 1500 attention scores per layer they cost as much as the matmuls.
// The vector helpers (exp_poly, softmax_inplace) are the LLM's (llm/model/cpu_kernels.hpp).

#include "llm/model/cpu_kernels.hpp"

namespace talkserve::speech::detail::cpu {

using llm::detail::cpu::exp_poly;
using llm::detail::cpu::kLanes;
using llm::detail::cpu::softmax_inplace;
using llm::detail::cpu::vload;
using llm::detail::cpu::vsplat;
using llm::detail::cpu::vstore;

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

#ifdef TALKSERVE_CPU_AVX2_DISPATCH
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
