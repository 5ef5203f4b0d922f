#pragma once
// out = beta * out + a . b (+ bias) on the CPU with the BLAS kept single-threaded: the work is
// split across torch's intra-op threads by rows of `a` (or, for a few rows, by columns of `b`)
// and each part is one BLAS call of its own.
//
// Why: OpenBLAS's own worker threads spin (sched_yield) for a while after every call. In a
// server that runs many small matmuls from several threads (the LLM engine, the recogniser's
// encoder and decode loop) they took about half the CPU under load, and an idle server kept a
// core busy. With the BLAS single-threaded (model loaders call openblas_set_num_threads(1))
// the parallelism comes from at::parallel_for, whose OpenMP workers sleep when idle.
//
// a: [M, K], b: [K, N] (any strides BLAS accepts, e.g. a transposed weight), out: [M, N]
// contiguous float32, bias: [N] or undefined. Internal to the model code.

#include <ATen/Parallel.h>
#include <ATen/core/ivalue.h>  // first: clang (C++20) needs c10::IValue complete in libtorch 1.13's torch.h
#include <torch/torch.h>

#include <algorithm>

namespace talkserve::llm::detail {

inline void parallel_addmm(torch::Tensor& out, const torch::Tensor& a, const torch::Tensor& b,
                           const torch::Tensor& bias = {}, double beta = 0.0) {
  const std::int64_t M = a.size(0), N = b.size(1), K = a.size(1);
  const int threads = at::get_num_threads();
  // Below ~1 M multiply-adds a part costs more to hand out than to compute.
  if (threads <= 1 || M * N * K < (1 << 20) || !out.device().is_cpu() || at::in_parallel_region()) {
    if (bias.defined() && beta == 0.0) {
      torch::addmm_out(out, bias, a, b);
    } else if (beta == 0.0) {
      torch::mm_out(out, a, b);
    } else {
      out.addmm_(a, b, beta);
      if (bias.defined()) out.add_(bias);
    }
    return;
  }
  const bool by_rows = M >= 4 * threads;
  const std::int64_t extent = by_rows ? M : N;
  const std::int64_t chunk = (extent + threads - 1) / threads;
  at::parallel_for(0, threads, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t t = begin; t < end; ++t) {
      const std::int64_t from = t * chunk, len = std::min(chunk, extent - from);
      if (len <= 0) continue;
      torch::Tensor o = by_rows ? out.narrow(0, from, len) : out.narrow(1, from, len);
      const torch::Tensor x = by_rows ? a.narrow(0, from, len) : a;
      const torch::Tensor y = by_rows ? b : b.narrow(1, from, len);
      if (beta == 0.0) {
        if (bias.defined()) {
          torch::addmm_out(o, by_rows ? bias : bias.narrow(0, from, len), x, y);
        } else {
          torch::mm_out(o, x, y);
        }
      } else {
        o.addmm_(x, y, beta);
        if (bias.defined()) o.add_(by_rows ? bias : bias.narrow(0, from, len));
      }
    }
  });
}

}  // namespace talkserve::llm::detail
