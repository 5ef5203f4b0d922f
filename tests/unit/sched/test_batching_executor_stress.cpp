// Many producers against a real-time executor: every accepted request gets exactly one
// callback, no request runs twice, cancelled/expired ones never run, refused ones get none.

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "talkserve/sched/batching_executor.hpp"

using namespace std::chrono_literals;
using talkserve::sched::BatchingConfig;
using talkserve::sched::BatchingExecutor;
using talkserve::sched::Clock;
using talkserve::sched::EnqueueOptions;
using talkserve::sched::ExecErrc;
using talkserve::sched::Expected;
using talkserve::sched::StopMode;

namespace {

enum Fate : int { kPending = 0, kRejected, kCompleted, kCancelled, kExpired, kOther };

struct Ledger {
  explicit Ledger(std::size_t n) : calls(n), runs(n), fate(n), cancel_won(n) {}
  std::vector<std::atomic<int>> calls;  // callback invocations
  std::vector<std::atomic<int>> runs;   // times the batch function saw it
  std::vector<std::atomic<int>> fate;
  std::vector<std::atomic<bool>> cancel_won;  // cancel() returned true
};

}  // namespace

TEST_CASE("stress: 8 producers x 2000 requests, each completes exactly once",
          "[sched][executor][stress]") {
  constexpr int kProducers = 8;
  constexpr int kPerProducer = 2000;
  constexpr std::size_t kTotal = kProducers * kPerProducer;
  Ledger ledger(kTotal);
  Clock& clock = talkserve::sched::steady_clock();

  BatchingConfig config;
  config.name = "stress";
  config.max_batch = 16;
  config.max_queue = 512;
  config.min_wait = 0us;
  config.max_wait = 200us;
  config.num_workers = 2;

  std::atomic<std::uint64_t> observed_batches{0};
  BatchingExecutor<int, int> ex(
      config, clock,
      [&](std::vector<int>& batch) {
        std::vector<int> out;
        out.reserve(batch.size());
        for (int r : batch) {
          ledger.runs[static_cast<std::size_t>(r)].fetch_add(1);
          out.push_back(r * 3 + 1);
        }
        return out;
      },
      [&](const talkserve::sched::BatchReport& r) {
        if (r.batch_size >= 1 && r.batch_size <= 16 && r.queue_waits.size() == r.batch_size) {
          observed_batches.fetch_add(1);
        }
      });

  auto callback_for = [&](int r) {
    return [&ledger, r](Expected<int> e) {
      const auto i = static_cast<std::size_t>(r);
      ledger.calls[i].fetch_add(1);
      int fate = kOther;
      if (e.has_value()) {
        fate = *e == r * 3 + 1 ? kCompleted : kOther;
      } else if (e.error().code == ExecErrc::cancelled) {
        fate = kCancelled;
      } else if (e.error().code == ExecErrc::deadline_exceeded) {
        fate = kExpired;
      }
      ledger.fate[i].store(fate);
    };
  };

  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      std::mt19937 rng(static_cast<unsigned>(p) * 7919u + 1u);
      std::uniform_int_distribution<int> priority(0, 2);
      std::uniform_int_distribution<int> percent(0, 99);
      for (int k = 0; k < kPerProducer; ++k) {
        const int r = p * kPerProducer + k;
        EnqueueOptions opts{.priority = priority(rng), .deadline = std::nullopt};
        if (percent(rng) < 10)
          opts.deadline = clock.now() + std::chrono::microseconds(percent(rng));
        auto id = ex.enqueue(r, callback_for(r), opts);
        if (!id) {
          // queue_full is the only refusal while running; no callback may follow.
          ledger.fate[static_cast<std::size_t>(r)].store(
              id.error().code == ExecErrc::queue_full ? kRejected : kOther);
          continue;
        }
        if (percent(rng) < 15 && ex.cancel(*id)) {
          ledger.cancel_won[static_cast<std::size_t>(r)].store(true);
        }
      }
    });
  }
  for (auto& t : producers) t.join();
  ex.stop(StopMode::drain);

  std::size_t completed = 0, cancelled = 0, expired = 0, rejected = 0, bad = 0;
  for (std::size_t i = 0; i < kTotal; ++i) {
    const int fate = ledger.fate[i].load();
    const int calls = ledger.calls[i].load();
    const int runs = ledger.runs[i].load();
    bool ok = false;
    switch (fate) {
      case kRejected:
        ok = calls == 0 && runs == 0;
        ++rejected;
        break;
      case kCompleted:
        ok = calls == 1 && runs == 1 && !ledger.cancel_won[i];
        ++completed;
        break;
      case kCancelled:
        ok = calls == 1 && runs == 0 && ledger.cancel_won[i];
        ++cancelled;
        break;
      case kExpired:
        ok = calls == 1 && runs == 0 && !ledger.cancel_won[i];
        ++expired;
        break;
      default:
        ok = false;
    }
    if (!ok) ++bad;
  }
  CHECK(bad == 0);
  CHECK(completed + cancelled + expired + rejected == kTotal);
  CHECK(completed > 0);

  const auto s = ex.stats();
  CHECK(s.accepted + s.rejected == kTotal);
  CHECK(s.rejected == rejected);
  CHECK(s.completed == completed);
  CHECK(s.cancelled == cancelled);
  CHECK(s.expired == expired);
  CHECK(s.failed == 0);
  CHECK(s.stopped == 0);
  CHECK(s.queue_depth == 0);
  CHECK(s.in_flight == 0);
  CHECK(s.batches == observed_batches.load());
  const auto hist_batches = std::accumulate(s.batch_size_histogram.begin(),
                                            s.batch_size_histogram.end(), std::uint64_t{0});
  CHECK(hist_batches == s.batches);
  std::uint64_t hist_requests = 0;
  for (std::size_t n = 0; n < s.batch_size_histogram.size(); ++n) {
    hist_requests += n * s.batch_size_histogram[n];
  }
  CHECK(hist_requests == completed);
  INFO("completed " << completed << " cancelled " << cancelled << " expired " << expired
                    << " rejected " << rejected << " batches " << s.batches);
  CHECK(s.batches < completed);  // batching actually happened
}
