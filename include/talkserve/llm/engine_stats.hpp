#pragma once
// What the engine reports about itself: a snapshot struct and an observer interface. The
// Prometheus wiring lives apart (engine_metrics.hpp) so the engine does not depend on it.

#include <array>
#include <cstdint>
#include <optional>

#include "talkserve/llm/generation.hpp"

namespace talkserve::llm {

struct EngineStats {
  int num_running = 0;
  int num_waiting = 0;
  int num_free_blocks = 0;   // allocatable (free + evictable cached)
  int num_total_blocks = 0;
  double kv_cache_usage = 0.0;  // fraction of blocks held by sequences (0..1)
  // Cumulative totals.
  std::uint64_t prompt_tokens_total = 0;      // prompt tokens of requests whose prefill ended
  std::uint64_t generation_tokens_total = 0;  // sampled tokens
  std::uint64_t num_preemptions_total = 0;
  std::uint64_t prefix_cache_queries_total = 0;  // tokens (see KvBlockManager)
  std::uint64_t prefix_cache_hits_total = 0;     // tokens
  std::uint64_t steps_total = 0;
  std::array<std::uint64_t, 4> requests_finished_total{};  // indexed by FinishReason
  // Per priority (0 vip, 1 standard, 2 batch): when the oldest request that has not been
  // scheduled yet arrived; empty when none waits. Preempted sequences do not count: they were
  // admitted once. Feeds load shedding (Engine::queue_delay).
  std::array<std::optional<sched::Clock::time_point>, 3> oldest_unscheduled{};
};

// Hooks called on the engine thread; implementations must be cheap and must not block.
class EngineObserver {
 public:
  virtual ~EngineObserver() = default;
  // After every engine step, with the state at its end.
  virtual void on_step(const EngineStats& stats) { (void)stats; }
  // When a request finishes, with its timing (queue, TTFT, ITLs, e2e) and usage.
  virtual void on_request_finished(const FinishedEvent& event) { (void)event; }
};

}  // namespace talkserve::llm
