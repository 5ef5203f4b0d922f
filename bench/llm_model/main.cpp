// Micro-benchmark of ModelRunner::step(): decode steps for batch sizes 1..64, each sequence
// with `--context` tokens already in the KV cache, plus one prefill of that context.
// Compute-bound check: the FLOP rate of a plain float32 torch::mm (--mm-size cube, same
// threads) measured in the same run, and each decode row's FLOP rate as a fraction of it
// (FLOPs: 2 per weight per token for every matmul incl. the classifier, plus 4 * layers *
// heads * head_dim * context for attention). For a compute-bound model, e.g.
//   scripts/make-random-llama2c.py /tmp/rand512.bin   (dim 512, hidden 1376, 8 layers)
//   bench_llm_model --model /tmp/rand512.bin --batches 1,64
// Prints one JSON object on stdout, then a human table on stderr.
//
//   bench_llm_model [--model PATH] [--context N] [--iters N] [--threads N] [--batches 1,2,4]
//                   [--mm-size N]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/core/ivalue.h>  // first: clang (C++20) needs c10::IValue complete in libtorch 1.13's torch.h
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "talkserve/llm/model_loader.hpp"

namespace {

using talkserve::llm::ModelConfig;
using talkserve::llm::ModelRunner;
using talkserve::llm::StepBatch;
using talkserve::llm::StepSequence;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::string default_model() {
  if (const char* s = std::getenv("TALKSERVE_SHARED_DIR")) return std::string(s) + "/models/stories260K/stories260K.bin";
  return std::string(TALKSERVE_BENCH_SOURCE_DIR) + "/../shared/models/stories260K/stories260K.bin";
}

// ModelInfo has no FFN width: read it from the checkpoint (llama2.c header or config.json).
int hidden_dim_of(const std::string& path) {
  namespace fs = std::filesystem;
  if (fs::is_directory(path) || path.ends_with(".safetensors")) {
    const fs::path dir = fs::is_directory(path) ? fs::path(path) : fs::path(path).parent_path();
    std::ifstream f(dir / "config.json");
    return nlohmann::json::parse(f).value("intermediate_size", 0);
  }
  std::ifstream f(path, std::ios::binary);
  int32_t header[7] = {};
  f.read(reinterpret_cast<char*>(header), sizeof header);
  return header[1];
}

// GFLOP/s of a plain float32 n x n x n torch::mm on the current threads (best of a few).
double mm_gflops(int n) {
  c10::InferenceMode guard;
  torch::Tensor a = torch::randn({n, n}), b = torch::randn({n, n}), c = torch::empty({n, n});
  torch::mm_out(c, a, b);
  const int reps = std::max(3, static_cast<int>(2e9 / (2.0 * n * n * n)));
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    torch::mm_out(c, a, b);
    best = std::min(best, ms_since(t0));
  }
  return 2.0 * n * n * n / (best / 1000.0) / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_path = default_model();
  int context = 64;
  int iters = 20;
  int threads = 0;
  int mm_size = 1024;
  std::vector<int> batches = {1, 2, 4, 8, 16, 32, 64};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--model") model_path = v;
    else if (a == "--context") context = std::stoi(v);
    else if (a == "--iters") iters = std::stoi(v);
    else if (a == "--threads") threads = std::stoi(v);
    else if (a == "--mm-size") mm_size = std::stoi(v);
    else if (a == "--batches") {
      batches.clear();
      std::stringstream ss(v);
      for (std::string item; std::getline(ss, item, ',');) batches.push_back(std::stoi(item));
    } else {
      std::cerr << "unknown option " << a << "\n";
      return 2;
    }
  }
  const int max_batch = *std::max_element(batches.begin(), batches.end());
  ModelConfig cfg;
  cfg.path = model_path;
  cfg.num_threads = threads;
  cfg.block_size = 16;
  const int blocks_per_seq = (context + iters + 16) / 16 + 1;
  cfg.num_blocks = max_batch * blocks_per_seq;
  std::unique_ptr<ModelRunner> model;
  try {
    model = talkserve::llm::load_model(cfg);
  } catch (const std::exception& e) {
    std::cerr << "bench_llm_model: " << e.what() << "\n";
    return 1;
  }
  const auto& info = model->info();
  const int vocab = info.vocab_size;
  auto table_of = [&](int s) {
    std::vector<int32_t> t;
    for (int b = 0; b < blocks_per_seq; ++b) t.push_back(s * blocks_per_seq + b);
    return t;
  };
  auto prompt = [&](int s) {
    std::vector<int32_t> p;
    for (int i = 0; i < context; ++i) p.push_back((i * 7 + s * 13 + 3) % vocab);
    return p;
  };

  nlohmann::json out;
  out["bench"] = "llm_model";
  out["model"] = info.name;
  out["params"] = {{"dim", info.dim}, {"layers", info.n_layers}, {"heads", info.n_heads},
                   {"kv_heads", info.n_kv_heads}, {"vocab", vocab}};
  out["context"] = context;
  out["iters"] = iters;
  out["threads"] = threads;

  // Decode FLOPs per token (at context c): every matmul weight twice, attention 4*L*H*hd*c.
  const double hidden = hidden_dim_of(model_path);
  const double qkv_out = static_cast<double>(info.n_heads + 2 * info.n_kv_heads) * info.head_dim;
  const double matmul_weights =
      info.n_layers * (info.dim * qkv_out + static_cast<double>(info.n_heads) * info.head_dim * info.dim +
                       3.0 * info.dim * hidden) +
      static_cast<double>(info.dim) * vocab;
  auto flops_per_token = [&](double ctx) {
    return 2.0 * matmul_weights + 4.0 * info.n_layers * info.n_heads * info.head_dim * ctx;
  };
  const double mm_rate = mm_gflops(mm_size);  // after load_model set the thread counts
  out["hidden_dim"] = hidden;
  out["mm_size"] = mm_size;
  out["mm_gflops"] = mm_rate;

  // Prefill of one `context`-token prompt (after a warm-up).
  StepBatch pre;
  pre.seqs.push_back({prompt(0), 0, table_of(0), true});
  model->step(pre);
  auto t0 = Clock::now();
  model->step(pre);
  const double prefill_ms = ms_since(t0);
  out["prefill_ms"] = prefill_ms;
  out["prefill_tokens_per_s"] = context / (prefill_ms / 1000.0);

  nlohmann::json rows = nlohmann::json::array();
  for (int B : batches) {
    StepBatch prefill;
    for (int s = 0; s < B; ++s) prefill.seqs.push_back({prompt(s), 0, table_of(s), true});
    model->step(prefill);
    std::vector<double> times;
    double flops = 0;
    for (int it = 0; it < iters; ++it) {
      flops += B * flops_per_token(context + it + 1);
      StepBatch dec;
      for (int s = 0; s < B; ++s) dec.seqs.push_back({{(it + s) % vocab}, context + it, table_of(s), true});
      t0 = Clock::now();
      model->step(dec);
      times.push_back(ms_since(t0));
    }
    std::sort(times.begin(), times.end());
    double mean = 0;
    for (double t : times) mean += t;
    mean /= static_cast<double>(times.size());
    const double gflops = flops / iters / (mean / 1000.0) / 1e9;
    rows.push_back({{"batch", B},
                    {"step_ms_mean", mean},
                    {"step_ms_p50", times[times.size() / 2]},
                    {"step_ms_min", times.front()},
                    {"tokens_per_s", B / (mean / 1000.0)},
                    {"gflops", gflops},
                    {"mm_ratio", gflops / mm_rate},
                    // Best step vs best mm: both best-of, the fairer figure on a shared machine.
                    {"mm_ratio_best", flops / iters / (times.front() / 1000.0) / 1e9 / mm_rate}});
  }
  out["decode"] = rows;
  std::cout << out.dump(2) << std::endl;

  std::fprintf(stderr, "\nmodel %s, context %d, prefill %.2f ms (%.0f tok/s)\n", info.name.c_str(), context,
               prefill_ms, context / (prefill_ms / 1000.0));
  std::fprintf(stderr, "plain torch::mm %dx%dx%d: %.1f GFLOP/s\n", mm_size, mm_size, mm_size, mm_rate);
  std::fprintf(stderr, "%6s %12s %12s %12s %12s %10s %10s %10s\n", "batch", "step ms", "p50 ms", "min ms",
               "tok/s", "GFLOP/s", "of mm", "best/mm");
  for (const auto& r : rows) {
    std::fprintf(stderr, "%6d %12.3f %12.3f %12.3f %12.0f %10.2f %9.0f%% %9.0f%%\n", r["batch"].get<int>(),
                 r["step_ms_mean"].get<double>(), r["step_ms_p50"].get<double>(), r["step_ms_min"].get<double>(),
                 r["tokens_per_s"].get<double>(), r["gflops"].get<double>(), 100.0 * r["mm_ratio"].get<double>(),
                 100.0 * r["mm_ratio_best"].get<double>());
  }
  return 0;
}
