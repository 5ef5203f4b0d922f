#pragma once
// The adaptive batch window of a BatchingExecutor: how long a partial batch may wait for more
// requests, from the recent arrival rate.
//
// The rule (all durations on the executor's Clock):
//
//   On each accepted arrival at time t, with the previous arrival at p:
//     gap    = t - p
//     sample = min(gap, 2 * max_wait)          (one long silence must not dominate for ever)
//     ewma   = sample                          if there was no estimate yet, or gap > max_wait
//                                              (a quiet period: the old rate is stale)
//            = alpha * sample + (1 - alpha) * ewma   otherwise
//     The first arrival ever has no gap and leaves the estimate unset.
//
//   window = min_wait                                   if no estimate or ewma > max_wait
//          = clamp(ewma * (max_batch - 1), min_wait, max_wait)   otherwise
//
//   A partial batch is dispatched when now >= (arrival of the oldest waiting request) + window;
//   a full one (max_batch waiting) at once.
//
// Why: ewma * (max_batch - 1) is how long a full batch takes to arrive at the current rate.
// When the next arrival is not expected within max_wait (ewma > max_wait, e.g. a lone request
// after a quiet period) waiting would only add latency, so the request goes after min_wait.
// When arrivals are close together (a burst) the window opens, up to max_wait, and they batch.
// With the default alpha = 0.5, one close arrival after a quiet period (gap ~ 0) brings the
// estimate from 2 * max_wait to max_wait, which already opens the window.
//
// Thread-safety: none; the executor calls it under its own mutex.

#include <cstddef>
#include <optional>

#include "talkserve/sched/clock.hpp"

namespace talkserve::sched {

class BatchWindow {
 public:
  // Preconditions (BatchingConfig::validate checks them): 0 <= min_wait <= max_wait,
  // 0 < alpha <= 1, max_batch >= 1.
  BatchWindow(Clock::duration min_wait, Clock::duration max_wait, double alpha,
              std::size_t max_batch);

  void on_arrival(Clock::time_point t);

  // The smoothed inter-arrival gap, unset before the second arrival.
  std::optional<Clock::duration> ewma_gap() const;
  // True when the next arrival is not expected within max_wait.
  bool quiet() const;
  Clock::duration window() const;

 private:
  Clock::duration min_wait_;
  Clock::duration max_wait_;
  double alpha_;
  std::size_t max_batch_;
  std::optional<Clock::time_point> last_arrival_;
  std::optional<double> ewma_ns_;
};

}  // namespace talkserve::sched
