// BatchingExecutor throughput: closed-loop producers (each keeps `window` requests
// outstanding) against one executor on the real clock. Scenarios vary max_batch and the
// batch function's cost (trivial, or a fixed per-batch cost that batching amortises).
// Prints one JSON object on stdout, then a human table on stderr.
//
//   bench_batching [--requests N] [--producers P] [--window W]

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "talkserve/sched/batching_executor.hpp"

namespace ts = talkserve::sched;
using namespace std::chrono_literals;

namespace {

struct Scenario {
  std::string name;
  std::size_t max_batch;
  std::chrono::microseconds per_batch_cost;  // simulated model time per batch call
};

struct Outcome {
  double seconds = 0;
  double requests_per_s = 0;
  double mean_batch = 0;
  double p50_wait_us = 0;
  double p99_wait_us = 0;
  std::uint64_t batches = 0;
  std::uint64_t completed = 0;
};

// Busy work standing in for a forward pass whose cost barely depends on the batch size.
void spin_for(std::chrono::microseconds d) {
  if (d.count() == 0) return;
  const auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
  }
}

// A per-producer budget of outstanding requests.
class Credits {
 public:
  explicit Credits(int n) : n_(n) {}
  void acquire() {
    std::unique_lock lock(m_);
    cv_.wait(lock, [&] { return n_ > 0; });
    --n_;
  }
  void release() {
    {
      std::lock_guard lock(m_);
      ++n_;
    }
    cv_.notify_one();
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  int n_;
};

Outcome run(const Scenario& sc, int requests, int producers, int window) {
  ts::BatchingConfig cfg;
  cfg.name = sc.name;
  cfg.max_batch = sc.max_batch;
  cfg.max_queue = static_cast<std::size_t>(producers * window);
  cfg.min_wait = 0us;
  cfg.max_wait = 500us;

  std::mutex waits_m;
  std::vector<double> waits_us;
  waits_us.reserve(static_cast<std::size_t>(requests));
  ts::BatchingExecutor<int, int> ex(
      cfg, ts::steady_clock(),
      [&](std::vector<int>& batch) {
        spin_for(sc.per_batch_cost);
        std::vector<int> out(batch.size());
        std::transform(batch.begin(), batch.end(), out.begin(), [](int x) { return x + 1; });
        return out;
      },
      [&](const ts::BatchReport& r) {
        std::lock_guard lock(waits_m);
        for (auto w : r.queue_waits) waits_us.push_back(static_cast<double>(w.count()) / 1e3);
      });

  const int per_producer = requests / producers;
  std::vector<std::unique_ptr<Credits>> credits;
  for (int p = 0; p < producers; ++p) credits.push_back(std::make_unique<Credits>(window));

  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      Credits& c = *credits[static_cast<std::size_t>(p)];
      for (int k = 0; k < per_producer; ++k) {
        c.acquire();
        auto id = ex.enqueue(
            k, [&c](ts::Expected<int>) { c.release(); },
            ts::EnqueueOptions{.priority = k % 3, .deadline = std::nullopt});
        if (!id) {  // cannot happen: max_queue covers every credit
          std::fprintf(stderr, "unexpected %s\n", std::string(to_string(id.error().code)).c_str());
          std::exit(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  ex.stop(ts::StopMode::drain);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const auto s = ex.stats();
  Outcome o;
  o.seconds = secs;
  o.completed = s.completed;
  o.batches = s.batches;
  o.requests_per_s = static_cast<double>(s.completed) / secs;
  o.mean_batch = s.batches ? static_cast<double>(s.completed) / static_cast<double>(s.batches) : 0;
  std::sort(waits_us.begin(), waits_us.end());
  if (!waits_us.empty()) {
    o.p50_wait_us = waits_us[waits_us.size() / 2];
    o.p99_wait_us = waits_us[std::min(waits_us.size() - 1, waits_us.size() * 99 / 100)];
  }
  return o;
}

int arg_int(int argc, char** argv, const char* name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return std::atoi(argv[i + 1]);
  }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  const int requests = arg_int(argc, argv, "--requests", 100000);
  const int producers = std::max(1, arg_int(argc, argv, "--producers", 4));
  const int window = std::max(1, arg_int(argc, argv, "--window", 32));

  const std::vector<Scenario> scenarios = {
      {"trivial_b1", 1, 0us},   {"trivial_b8", 8, 0us},   {"trivial_b32", 32, 0us},
      {"cost50us_b1", 1, 50us}, {"cost50us_b8", 8, 50us}, {"cost50us_b32", 32, 50us},
  };
  nlohmann::json out;
  out["bench"] = "batching";
  out["requests"] = requests;
  out["producers"] = producers;
  out["window"] = window;
  out["scenarios"] = nlohmann::json::array();
  std::fprintf(stderr, "%-14s %9s %12s %10s %10s %10s\n", "scenario", "max_batch", "req/s",
               "mean_batch", "p50_us", "p99_us");
  for (const auto& sc : scenarios) {
    // Fixed-cost scenarios at max_batch 1 are slow by design; keep them short.
    const int n =
        sc.per_batch_cost.count() && sc.max_batch == 1 ? std::min(requests, 10000) : requests;
    const Outcome o = run(sc, n, producers, window);
    out["scenarios"].push_back({{"name", sc.name},
                                {"max_batch", sc.max_batch},
                                {"per_batch_cost_us", sc.per_batch_cost.count()},
                                {"requests", o.completed},
                                {"seconds", o.seconds},
                                {"requests_per_s", o.requests_per_s},
                                {"batches", o.batches},
                                {"mean_batch", o.mean_batch},
                                {"p50_queue_wait_us", o.p50_wait_us},
                                {"p99_queue_wait_us", o.p99_wait_us}});
    std::fprintf(stderr, "%-14s %9zu %12.0f %10.2f %10.1f %10.1f\n", sc.name.c_str(), sc.max_batch,
                 o.requests_per_s, o.mean_batch, o.p50_wait_us, o.p99_wait_us);
  }
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}
