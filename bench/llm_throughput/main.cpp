// Aggregate decode throughput and latency of the continuous-batching engine.
//
//   bench_llm_throughput [--model PATH | --fake] [--concurrency 1,4,16,64,128]
//                        [--max-tokens 256] [--prompt-len 64] [--serial-requests 4]
//                        [--num-blocks N] [--threads N]
//
// For each concurrency N: N requests submitted at once (greedy, ignore_eos, max_tokens each),
// wall time until the last finishes -> generated tokens/s; TTFT and inter-token latency
// percentiles from the engine's per-request timing. The serial baseline is the same engine with
// max_num_seqs = 1 over --serial-requests requests; batching ratio = tok/s(N) / tok/s(serial).
// Then a KV memory report: sequences of prompt 64 + output 256 that fit in the KV pool with
// paging versus reserving the full context per sequence, analytic and measured.
// Prints a human table on stderr and one JSON object on stdout.

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "talkserve/llm/engine.hpp"
#include "talkserve/llm/model_loader.hpp"
#include "talkserve/sched/clock.hpp"

using namespace talkserve;
using namespace talkserve::llm;

namespace {

// Engine-only mode: a model that costs nothing, so the figures are the engine's own overhead.
class NullModelRunner final : public ModelRunner {
 public:
  NullModelRunner(int vocab, int max_seq_len, int block_size, int num_blocks)
      : block_size_(block_size), num_blocks_(num_blocks) {
    info_.name = "null";
    info_.vocab_size = vocab;
    info_.max_seq_len = max_seq_len;
    info_.n_layers = 5;
    info_.n_kv_heads = 4;
    info_.head_dim = 8;
  }
  const ModelInfo& info() const override { return info_; }
  int block_size() const override { return block_size_; }
  int num_blocks() const override { return num_blocks_; }
  StepOutput step(const StepBatch& batch) override {
    StepOutput out;
    for (const auto& s : batch.seqs) {
      if (!s.want_logits) continue;
      const std::size_t row = out.logits.size();
      out.logits.resize(row + static_cast<std::size_t>(info_.vocab_size));
      const auto last = static_cast<unsigned>(s.tokens.back());
      for (int j = 0; j < info_.vocab_size; ++j)
        out.logits[row + static_cast<std::size_t>(j)] =
            static_cast<float>((last * 2654435761u + static_cast<unsigned>(j) * 40503u) % 997u);
      ++out.rows;
    }
    return out;
  }

 private:
  ModelInfo info_;
  int block_size_;
  int num_blocks_;
};

struct Options {
  std::string model;
  bool fake = false;
  std::vector<int> concurrency{1, 4, 16, 64, 128};
  int max_tokens = 256;
  int prompt_len = 64;
  int serial_requests = 4;
  int num_blocks = 0;  // 0: enough for the largest concurrency
  int threads = 0;
};

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> v;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) v.push_back(std::stoi(item));
  return v;
}

std::string default_model_path() {
  namespace fs = std::filesystem;
  if (const char* shared = std::getenv("TALKSERVE_SHARED_DIR"))
    return (fs::path(shared) / "models/stories260K/stories260K.bin").string();
  const char* src = std::getenv("TALKSERVE_SOURCE_DIR");
  const fs::path base = src ? fs::path(src) : fs::path(TALKSERVE_BENCH_SOURCE_DIR);
  return (base / "../shared/models/stories260K/stories260K.bin").lexically_normal().string();
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const double idx = p * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(idx);
  const auto hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (idx - static_cast<double>(lo));
}

struct PeakObserver final : EngineObserver {
  int peak_running = 0;
  void on_step(const EngineStats& s) override { peak_running = std::max(peak_running, s.num_running); }
};

struct RunResult {
  int requests = 0;
  int max_num_seqs = 0;
  double wall_s = 0;
  long generated = 0;
  double tok_per_s = 0;
  double ttft_p50 = 0, ttft_p99 = 0, itl_p50 = 0, itl_p99 = 0;
  std::uint64_t preemptions = 0;
  std::uint64_t steps = 0;
  int peak_running = 0;
};

RunResult run(ModelRunner& runner, int requests, int max_num_seqs, const Options& opt) {
  EngineConfig cfg;
  cfg.scheduler.max_num_seqs = max_num_seqs;
  cfg.scheduler.max_num_batched_tokens = std::max(512, max_num_seqs);
  cfg.scheduler.max_prefill_chunk = 256;
  cfg.enable_prefix_caching = true;
  PeakObserver peak;
  Engine engine(runner, cfg, sched::steady_clock(), {}, &peak);

  std::mutex mu;
  std::condition_variable cv;
  std::vector<FinishedEvent> done;
  const int vocab = runner.info().vocab_size;
  const auto t0 = std::chrono::steady_clock::now();
  engine.start();
  for (int i = 0; i < requests; ++i) {
    GenerationRequest r;
    // Distinct prompts (different first tokens), so the prefix cache does not flatter the run.
    r.prompt.push_back(runner.info().bos_id);
    for (int k = 1; k < opt.prompt_len; ++k)
      r.prompt.push_back(3 + (i * 131 + k * 17) % (vocab - 3));
    r.params.temperature = 0.0f;
    r.params.ignore_eos = true;
    r.params.max_tokens = opt.max_tokens;
    r.on_event = [&](GenerationEvent&& ev) {
      if (auto* f = std::get_if<FinishedEvent>(&ev)) {
        std::lock_guard lock(mu);
        done.push_back(std::move(*f));
        cv.notify_one();
      }
    };
    if (auto res = engine.submit(std::move(r)); !res) {
      std::cerr << "submit failed: " << res.error << "\n";
      std::exit(1);
    }
  }
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return static_cast<int>(done.size()) == requests; });
  }
  const auto t1 = std::chrono::steady_clock::now();
  engine.stop();

  RunResult r;
  r.requests = requests;
  r.max_num_seqs = max_num_seqs;
  r.wall_s = std::chrono::duration<double>(t1 - t0).count();
  std::vector<double> ttft, itl;
  for (const auto& f : done) {
    if (f.reason == FinishReason::error) {
      std::cerr << "request failed: " << f.message << "\n";
      std::exit(1);
    }
    r.generated += f.usage.completion_tokens;
    if (f.timing.time_to_first_token) ttft.push_back(*f.timing.time_to_first_token);
    itl.insert(itl.end(), f.timing.inter_token_latencies.begin(), f.timing.inter_token_latencies.end());
  }
  r.tok_per_s = static_cast<double>(r.generated) / r.wall_s;
  r.ttft_p50 = percentile(ttft, 0.5);
  r.ttft_p99 = percentile(ttft, 0.99);
  r.itl_p50 = percentile(itl, 0.5);
  r.itl_p99 = percentile(itl, 0.99);
  const auto st = engine.stats();
  r.preemptions = st.num_preemptions_total;
  r.steps = st.steps_total;
  r.peak_running = peak.peak_running;
  return r;
}

nlohmann::json to_json(const RunResult& r) {
  return {{"requests", r.requests},         {"max_num_seqs", r.max_num_seqs},
          {"wall_s", r.wall_s},             {"generated_tokens", r.generated},
          {"tokens_per_s", r.tok_per_s},    {"ttft_p50_ms", r.ttft_p50 * 1e3},
          {"ttft_p99_ms", r.ttft_p99 * 1e3}, {"itl_p50_ms", r.itl_p50 * 1e3},
          {"itl_p99_ms", r.itl_p99 * 1e3},  {"preemptions", r.preemptions},
          {"steps", r.steps},               {"peak_running", r.peak_running}};
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--model") opt.model = next();
    else if (a == "--fake") opt.fake = true;
    else if (a == "--concurrency") opt.concurrency = parse_list(next());
    else if (a == "--max-tokens") opt.max_tokens = std::stoi(next());
    else if (a == "--prompt-len") opt.prompt_len = std::stoi(next());
    else if (a == "--serial-requests") opt.serial_requests = std::stoi(next());
    else if (a == "--num-blocks") opt.num_blocks = std::stoi(next());
    else if (a == "--threads") opt.threads = std::stoi(next());
    else {
      std::cerr << "usage: bench_llm_throughput [--model PATH | --fake] [--concurrency 1,4,...]"
                   " [--max-tokens N] [--prompt-len N] [--serial-requests N] [--num-blocks N]"
                   " [--threads N]\n";
      return 2;
    }
  }
  const int block_size = 16;
  const int per_seq_blocks = (opt.prompt_len + opt.max_tokens + block_size - 1) / block_size;
  const int max_conc = *std::max_element(opt.concurrency.begin(), opt.concurrency.end());
  if (opt.num_blocks == 0) opt.num_blocks = max_conc * per_seq_blocks + 16;

  std::unique_ptr<ModelRunner> runner;
  std::string mode;
  if (opt.fake) {
    runner = std::make_unique<NullModelRunner>(512, 512, block_size, opt.num_blocks);
    mode = "engine-only (null model)";
  } else {
    ModelConfig mc;
    mc.path = opt.model.empty() ? default_model_path() : opt.model;
    mc.block_size = block_size;
    mc.num_blocks = opt.num_blocks;
    mc.num_threads = opt.threads;
    runner = load_model(mc);
    mode = "model " + runner->info().name;
  }
  const ModelInfo& info = runner->info();
  if (opt.prompt_len + opt.max_tokens > info.max_seq_len) {
    std::cerr << "prompt + max tokens exceed the context length " << info.max_seq_len << "\n";
    return 2;
  }

  nlohmann::json out;
  out["mode"] = mode;
  out["model"] = info.name;
  out["max_tokens"] = opt.max_tokens;
  out["prompt_len"] = opt.prompt_len;
  out["num_blocks"] = runner->num_blocks();
  out["block_size"] = runner->block_size();

  std::cerr << "warming up...\n";
  run(*runner, 8, 8, opt);  // first-use costs of the model (allocations, kernels per shape)

  const RunResult serial = run(*runner, opt.serial_requests, 1, opt);
  out["serial"] = to_json(serial);
  out["runs"] = nlohmann::json::array();
  std::vector<RunResult> results;
  for (int n : opt.concurrency) {
    std::cerr << "concurrency " << n << "...\n";
    results.push_back(run(*runner, n, std::max(1, n), opt));
    auto j = to_json(results.back());
    j["batching_ratio"] = results.back().tok_per_s / serial.tok_per_s;
    out["runs"].push_back(j);
  }

  // KV memory: the pool of this run, in blocks and bytes.
  const long bytes_per_token = 2L * info.n_layers * info.n_kv_heads * info.head_dim * 4L;
  const int pool = runner->num_blocks();
  // The last generated token is never fed back, so a sequence writes prompt + output - 1 slots.
  const int paged_blocks = (opt.prompt_len + opt.max_tokens - 1 + block_size - 1) / block_size;
  const int reserved_blocks = (info.max_seq_len + block_size - 1) / block_size;
  nlohmann::json kv;
  kv["pool_blocks"] = pool;
  kv["pool_bytes_f32"] = static_cast<long>(pool) * block_size * bytes_per_token;
  kv["kv_bytes_per_token_f32"] = bytes_per_token;
  kv["context_len"] = info.max_seq_len;
  kv["blocks_per_seq_paged"] = paged_blocks;
  kv["blocks_per_seq_reserved_full_context"] = reserved_blocks;
  kv["fit_paged"] = pool / paged_blocks;
  kv["fit_reserved"] = pool / reserved_blocks;
  kv["capacity_ratio"] = static_cast<double>(pool / paged_blocks) / std::max(1, pool / reserved_blocks);
  // Measured: a pool sized for 8 full-context reservations, 64 requests, as many running as
  // the scheduler can hold; peak running shows what paging admits, preemptions what it costs.
  {
    const int small_pool = 8 * reserved_blocks;
    NullModelRunner small(info.vocab_size, info.max_seq_len, block_size, small_pool);
    Options o = opt;
    const RunResult m = run(small, 64, 64, o);
    kv["measured"] = {{"pool_blocks", small_pool},
                      {"fit_reserved", small_pool / reserved_blocks},
                      {"fit_paged_at_full_length", small_pool / paged_blocks},
                      {"peak_running", m.peak_running},
                      {"preemptions", m.preemptions},
                      {"tokens_per_s_engine_only", m.tok_per_s}};
  }
  out["kv_memory"] = kv;

  std::fprintf(stderr, "\n%s, prompt %d, %d generated tokens per request, %d KV blocks\n",
               mode.c_str(), opt.prompt_len, opt.max_tokens, pool);
  std::fprintf(stderr, "%8s %8s %10s %8s %10s %10s %9s %9s %7s %6s\n", "requests", "max_seqs",
               "tok/s", "ratio", "ttft_p50", "ttft_p99", "itl_p50", "itl_p99", "preempt", "peak");
  auto row = [&](const RunResult& r, double ratio) {
    std::fprintf(stderr, "%8d %8d %10.0f %8.2f %8.1fms %8.1fms %7.2fms %7.2fms %7llu %6d\n",
                 r.requests, r.max_num_seqs, r.tok_per_s, ratio, r.ttft_p50 * 1e3,
                 r.ttft_p99 * 1e3, r.itl_p50 * 1e3, r.itl_p99 * 1e3,
                 static_cast<unsigned long long>(r.preemptions), r.peak_running);
  };
  row(serial, 1.0);
  for (const auto& r : results) row(r, r.tok_per_s / serial.tok_per_s);
  std::fprintf(stderr,
               "KV: %d blocks; a %d+%d sequence needs %d blocks paged vs %d reserved (context %d): "
               "%d vs %d sequences (x%.2f)\n",
               pool, opt.prompt_len, opt.max_tokens, paged_blocks, reserved_blocks,
               info.max_seq_len, pool / paged_blocks, pool / reserved_blocks,
               kv["capacity_ratio"].get<double>());
  std::fprintf(stderr, "measured (pool %d blocks, 64 requests): peak running %d, preemptions %llu\n",
               kv["measured"]["pool_blocks"].get<int>(), kv["measured"]["peak_running"].get<int>(),
               static_cast<unsigned long long>(kv["measured"]["preemptions"].get<std::uint64_t>()));
  std::cout << out.dump(2) << std::endl;
  return 0;
}
