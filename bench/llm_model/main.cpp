// Micro-benchmark of ModelRunner::step(): decode steps for batch sizes 1..64, each sequence
// with `--context` tokens already in the KV cache, plus one prefill of that context.
// Prints one JSON object on stdout, then a human table on stderr.
//
//   bench_llm_model [--model PATH] [--context N] [--iters N] [--threads N] [--batches 1,2,4]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

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

}  // namespace

int main(int argc, char** argv) {
  std::string model_path = default_model();
  int context = 64;
  int iters = 20;
  int threads = 0;
  std::vector<int> batches = {1, 2, 4, 8, 16, 32, 64};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--model") model_path = v;
    else if (a == "--context") context = std::stoi(v);
    else if (a == "--iters") iters = std::stoi(v);
    else if (a == "--threads") threads = std::stoi(v);
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
    for (int it = 0; it < iters; ++it) {
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
    rows.push_back({{"batch", B},
                    {"step_ms_mean", mean},
                    {"step_ms_p50", times[times.size() / 2]},
                    {"tokens_per_s", B / (mean / 1000.0)}});
  }
  out["decode"] = rows;
  std::cout << out.dump(2) << std::endl;

  std::fprintf(stderr, "\nmodel %s, context %d, prefill %.2f ms (%.0f tok/s)\n", info.name.c_str(), context,
               prefill_ms, context / (prefill_ms / 1000.0));
  std::fprintf(stderr, "%6s %12s %12s %12s\n", "batch", "step ms", "p50 ms", "tok/s");
  for (const auto& r : rows) {
    std::fprintf(stderr, "%6d %12.3f %12.3f %12.0f\n", r["batch"].get<int>(), r["step_ms_mean"].get<double>(),
                 r["step_ms_p50"].get<double>(), r["tokens_per_s"].get<double>());
  }
  return 0;
}
