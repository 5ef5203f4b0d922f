// Aggregate decode throughput and latency of the continuous-batching engine, in process and
// (optionally) through the OpenAI HTTP API of the talkserve binary.
//
//   bench_llm_throughput [--model PATH | --fake] [--concurrency 1,4,16,64,128]
//                        [--max-tokens 256] [--prompt-len 64] [--serial-requests 4]
//                        [--num-blocks N] [--threads N]
//                        [--http URL | --spawn-binary PATH [--config FILE] [--models-dir DIR]]
//                        [--api-key KEY]
//
// For each concurrency N: N requests submitted at once (greedy, ignore_eos, max_tokens each),
// wall time until the last finishes -> generated tokens/s; TTFT and inter-token latency
// percentiles from the engine's per-request timing. The serial baseline is the same engine with
// max_num_seqs = 1 over --serial-requests requests; batching ratio = tok/s(N) / tok/s(serial).
// Then a KV memory report: sequences of prompt 64 + output 256 that fit in the KV pool with
// paging versus reserving the full context per sequence, analytic and measured.
// HTTP mode (--http URL of a running server, or --spawn-binary PATH to start one on a free
// loopback port with the same KV pool, threads and scheduler limits as the in-process runs):
// the same N concurrent requests (same prompt token ids, greedy, ignore_eos, max_tokens) go
// through POST /v1/completions with stream:true, one client thread per stream; TTFT and
// inter-token latency are measured at the client from SSE arrival times. The report then has
// an "engine" row and an "http" row per concurrency, side by side.
// Prints a human table on stderr and one JSON object on stdout.

#include <unistd.h>

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
#include <latch>
#include <thread>
#include <vector>

#include "http_stream_client.hpp"
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
  // HTTP mode.
  std::string http_url;
  std::string spawn_binary;
  std::string config;      // default: <source>/config/talkserve.toml
  std::string models_dir;  // default: the model's grandparent directory
  std::string api_key;
  bool http() const { return !http_url.empty() || !spawn_binary.empty(); }
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
  std::string path = "engine";  // engine | http
  int requests = 0;
  int max_num_seqs = 0;
  double wall_s = 0;
  long generated = 0;
  double tok_per_s = 0;
  double ttft_p50 = 0, ttft_p99 = 0, itl_p50 = 0, itl_p99 = 0;
  std::uint64_t preemptions = 0;
  std::uint64_t steps = 0;
  int peak_running = 0;
  int sse_events = 0;  // http: text-carrying SSE events (< tokens when coalesced)
};

// Request i's prompt: BOS then distinct ids (different first tokens), so the prefix cache does
// not flatter the run. The same ids in process and over HTTP.
std::vector<int32_t> bench_prompt(int i, const Options& opt, int vocab, int bos) {
  std::vector<int32_t> p{bos};
  for (int k = 1; k < opt.prompt_len; ++k) p.push_back(3 + (i * 131 + k * 17) % (vocab - 3));
  return p;
}

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
    r.prompt = bench_prompt(i, opt, vocab, runner.info().bos_id);
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

// The same measurement through the HTTP API: `requests` streams at once, one thread each.
RunResult run_http(const bench::HttpTarget& target, int requests, const Options& opt, int vocab,
                   int bos) {
  std::vector<bench::StreamResult> results(static_cast<std::size_t>(requests));
  std::vector<std::string> bodies;
  for (int i = 0; i < requests; ++i) {
    nlohmann::json body = {{"prompt", bench_prompt(i, opt, vocab, bos)},
                           {"max_tokens", opt.max_tokens},
                           {"temperature", 0},
                           {"ignore_eos", true},
                           {"stream", true},
                           {"stream_options", {{"include_usage", true}}}};
    bodies.push_back(body.dump());
  }
  std::latch go(1);
  std::vector<std::thread> threads;
  for (int i = 0; i < requests; ++i) {
    threads.emplace_back([&, i] {
      go.wait();
      results[static_cast<std::size_t>(i)] =
          bench::post_stream(target, "/v1/completions", bodies[static_cast<std::size_t>(i)]);
    });
  }
  const auto t0 = std::chrono::steady_clock::now();
  go.count_down();
  for (auto& t : threads) t.join();
  const auto t1 = std::chrono::steady_clock::now();

  RunResult r;
  r.path = "http";
  r.requests = requests;
  r.wall_s = std::chrono::duration<double>(t1 - t0).count();
  std::vector<double> ttft, itl;
  for (const auto& s : results) {
    if (!s.error.empty()) {
      std::cerr << "HTTP request failed: " << s.error << "\n";
      std::exit(1);
    }
    r.generated += s.completion_tokens;
    r.sse_events += s.events;
    if (s.events > 0) ttft.push_back(s.ttft_s);
    itl.insert(itl.end(), s.itl_s.begin(), s.itl_s.end());
  }
  r.tok_per_s = static_cast<double>(r.generated) / r.wall_s;
  r.ttft_p50 = percentile(ttft, 0.5);
  r.ttft_p99 = percentile(ttft, 0.99);
  r.itl_p50 = percentile(itl, 0.5);
  r.itl_p99 = percentile(itl, 0.99);
  return r;
}

// Where the spawned server finds stories260K: the model file's grandparent directory.
std::string models_dir_for(const std::string& model_path) {
  namespace fs = std::filesystem;
  return fs::absolute(fs::path(model_path)).parent_path().parent_path().lexically_normal().string();
}

std::unique_ptr<bench::ServerProcess> spawn_server(const Options& opt, const std::string& model_path,
                                                   int num_blocks, int max_conc,
                                                   bench::HttpTarget& target) {
  namespace fs = std::filesystem;
  const char* src = std::getenv("TALKSERVE_SOURCE_DIR");
  const fs::path source = src ? fs::path(src) : fs::path(TALKSERVE_BENCH_SOURCE_DIR);
  const std::string config =
      opt.config.empty() ? (source / "config/talkserve.toml").string() : opt.config;
  const std::string models_dir = opt.models_dir.empty() ? models_dir_for(model_path) : opt.models_dir;
  auto quoted = [](const std::string& s) { return nlohmann::json(s).dump(); };
  // The in-process runs' settings: same KV pool, threads and scheduler limits.
  std::vector<std::string> args = {
      "--config", config,
      "--set", "http.host=\"127.0.0.1\"",
      "--set", "http.port=0",
      "--set", "http.static_dir=\"\"",
      "--set", "log.level=\"warn\"",
      "--set", "server.models_dir=" + quoted(models_dir),
      "--set", "llm.model=" + quoted(fs::absolute(model_path).string()),
      "--set", "llm.threads=" + std::to_string(opt.threads),
      "--set", "llm.num_blocks=" + std::to_string(num_blocks),
      "--set", "llm.block_size=16",
      "--set", "llm.max_num_seqs=" + std::to_string(std::max(64, max_conc)),
      "--set", "llm.max_num_batched_tokens=" + std::to_string(std::max(512, max_conc)),
      "--set", "llm.max_prefill_chunk=256",
      "--set", "llm.prefix_caching=true",
      "--set", "gateway.max_in_flight=" + std::to_string(std::max(256, 2 * max_conc)),
  };
  const std::string err_path =
      (fs::temp_directory_path() / ("bench_llm_throughput_server_" + std::to_string(::getpid()) +
                                    ".stderr"))
          .string();
  auto server = std::make_unique<bench::ServerProcess>(opt.spawn_binary, args, err_path);
  target = server->wait_ready(std::chrono::seconds(120));
  target.api_key = opt.api_key;
  std::cerr << "spawned " << opt.spawn_binary << " on " << target.host << ":" << target.port
            << " (stderr: " << err_path << ")\n";
  return server;
}

nlohmann::json to_json(const RunResult& r) {
  if (r.path == "http") {
    return {{"path", r.path},               {"requests", r.requests},
            {"wall_s", r.wall_s},           {"generated_tokens", r.generated},
            {"tokens_per_s", r.tok_per_s},  {"ttft_p50_ms", r.ttft_p50 * 1e3},
            {"ttft_p99_ms", r.ttft_p99 * 1e3}, {"itl_p50_ms", r.itl_p50 * 1e3},
            {"itl_p99_ms", r.itl_p99 * 1e3}, {"sse_events", r.sse_events}};
  }
  return {{"path", r.path},                 {"requests", r.requests},
          {"max_num_seqs", r.max_num_seqs},
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
    else if (a == "--http") opt.http_url = next();
    else if (a == "--spawn-binary") opt.spawn_binary = next();
    else if (a == "--config") opt.config = next();
    else if (a == "--models-dir") opt.models_dir = next();
    else if (a == "--api-key") opt.api_key = next();
    else {
      std::cerr << "usage: bench_llm_throughput [--model PATH | --fake] [--concurrency 1,4,...]"
                   " [--max-tokens N] [--prompt-len N] [--serial-requests N] [--num-blocks N]"
                   " [--threads N] [--http URL | --spawn-binary PATH [--config FILE]"
                   " [--models-dir DIR]] [--api-key KEY]\n";
      return 2;
    }
  }
  if (!opt.http_url.empty() && !opt.spawn_binary.empty()) {
    std::cerr << "--http and --spawn-binary exclude each other\n";
    return 2;
  }
  if (!opt.spawn_binary.empty() && opt.fake) {
    std::cerr << "--spawn-binary serves the real model; it cannot be combined with --fake\n";
    return 2;
  }
  const int block_size = 16;
  const int per_seq_blocks = (opt.prompt_len + opt.max_tokens + block_size - 1) / block_size;
  const int max_conc = *std::max_element(opt.concurrency.begin(), opt.concurrency.end());
  if (opt.num_blocks == 0) opt.num_blocks = max_conc * per_seq_blocks + 16;

  std::unique_ptr<ModelRunner> runner;
  std::string mode;
  std::string model_path;
  if (opt.fake) {
    runner = std::make_unique<NullModelRunner>(512, 512, block_size, opt.num_blocks);
    mode = "engine-only (null model)";
  } else {
    ModelConfig mc;
    mc.path = model_path = opt.model.empty() ? default_model_path() : opt.model;
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

  // HTTP target: started before the runs, so that each concurrency is measured in process and
  // over HTTP back to back (an idle server costs nothing; background load drifts hit both).
  bench::HttpTarget target;
  std::unique_ptr<bench::ServerProcess> server;
  if (opt.http()) {
    try {
      if (!opt.spawn_binary.empty()) {
        server = spawn_server(opt, model_path, opt.num_blocks, max_conc, target);
      } else {
        target = bench::parse_http_url(opt.http_url);
        target.api_key = opt.api_key;
      }
    } catch (const std::exception& e) {
      std::cerr << "HTTP target: " << e.what() << "\n";
      return 1;
    }
    std::cerr << "HTTP warming up...\n";
    run_http(target, 8, opt, info.vocab_size, info.bos_id);
  }

  const RunResult serial = run(*runner, opt.serial_requests, 1, opt);
  out["serial"] = to_json(serial);
  out["runs"] = nlohmann::json::array();
  nlohmann::json http_runs = nlohmann::json::array();
  std::vector<RunResult> results;
  std::vector<RunResult> http_results;
  for (int n : opt.concurrency) {
    std::cerr << "concurrency " << n << "...\n";
    results.push_back(run(*runner, n, std::max(1, n), opt));
    auto j = to_json(results.back());
    j["batching_ratio"] = results.back().tok_per_s / serial.tok_per_s;
    out["runs"].push_back(j);
    if (opt.http()) {
      std::cerr << "HTTP concurrency " << n << "...\n";
      http_results.push_back(run_http(target, n, opt, info.vocab_size, info.bos_id));
      auto h = to_json(http_results.back());
      // Against the HTTP run of the first concurrency (normally 1).
      h["batching_ratio"] = http_results.back().tok_per_s / http_results.front().tok_per_s;
      http_runs.push_back(h);
    }
  }
  if (opt.http()) {
    if (server) server->stop();
    out["http"] = {{"target", "http://" + target.host + ":" + target.port},
                   {"spawned", server != nullptr},
                   {"runs", http_runs}};
    // Side by side: what the HTTP path adds to the engine's own figures, per concurrency.
    nlohmann::json sbs = nlohmann::json::array();
    for (std::size_t i = 0; i < results.size() && i < http_results.size(); ++i) {
      const RunResult& e = results[i];
      const RunResult& w = http_results[i];
      sbs.push_back({{"concurrency", e.requests},
                     {"engine", to_json(e)},
                     {"http", to_json(w)},
                     {"tokens_per_s_http_over_engine", w.tok_per_s / e.tok_per_s},
                     {"ttft_p50_added_ms", (w.ttft_p50 - e.ttft_p50) * 1e3},
                     {"itl_p50_added_ms", (w.itl_p50 - e.itl_p50) * 1e3}});
    }
    out["side_by_side"] = sbs;
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
  std::fprintf(stderr, "%6s %8s %8s %10s %8s %10s %10s %9s %9s %7s %6s\n", "path", "requests",
               "max_seqs", "tok/s", "ratio", "ttft_p50", "ttft_p99", "itl_p50", "itl_p99",
               "preempt", "peak");
  auto row = [&](const RunResult& r, double ratio) {
    if (r.path == "http") {
      std::fprintf(stderr, "%6s %8d %8s %10.0f %8.2f %8.1fms %8.1fms %7.2fms %7.2fms %7s %6s\n",
                   r.path.c_str(), r.requests, "-", r.tok_per_s, ratio, r.ttft_p50 * 1e3,
                   r.ttft_p99 * 1e3, r.itl_p50 * 1e3, r.itl_p99 * 1e3, "-", "-");
      return;
    }
    std::fprintf(stderr, "%6s %8d %8d %10.0f %8.2f %8.1fms %8.1fms %7.2fms %7.2fms %7llu %6d\n",
                 r.path.c_str(), r.requests, r.max_num_seqs, r.tok_per_s, ratio, r.ttft_p50 * 1e3,
                 r.ttft_p99 * 1e3, r.itl_p50 * 1e3, r.itl_p99 * 1e3,
                 static_cast<unsigned long long>(r.preemptions), r.peak_running);
  };
  row(serial, 1.0);
  for (std::size_t i = 0; i < results.size(); ++i) {
    row(results[i], results[i].tok_per_s / serial.tok_per_s);
    // HTTP ratio: against the HTTP run of the first (lowest) concurrency.
    if (i < http_results.size())
      row(http_results[i], http_results[i].tok_per_s / http_results.front().tok_per_s);
  }
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
