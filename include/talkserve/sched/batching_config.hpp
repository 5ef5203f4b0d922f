#pragma once
// Configuration of one BatchingExecutor (one per resident model: asr, tts, lipsync, ...).
//
// Thread-safety: plain value type.

#include <chrono>
#include <cstddef>
#include <string>

namespace talkserve::sched {

struct BatchingConfig {
  std::string name = "executor";  // executor label in stats, logs and metrics
  std::size_t max_batch = 8;      // a batch never holds more requests than this
  std::size_t max_queue = 256;  // waiting (not yet running) requests; enqueue beyond -> queue_full
  // Bounds of the adaptive batch window (see BatchWindow for the rule).
  std::chrono::nanoseconds min_wait{0};
  std::chrono::nanoseconds max_wait = std::chrono::milliseconds(10);
  double ewma_alpha = 0.5;      // weight of the newest inter-arrival gap, in (0, 1]
  std::size_t num_workers = 1;  // threads running batches (each owns a share of the device)
  // > 0: the summed EnqueueOptions::cost of a batch stays within this (a request costlier than
  // the cap runs alone), and that much waiting cost closes the batch window like max_batch
  // requests do. Costs in a model's units of work (e.g. seconds of audio) keep batches of
  // one worker from holding far more work than another's. 0 = count requests only.
  double max_batch_cost = 0;
  // > 0: load shedding by queue delay. enqueue() refuses with `overloaded` while the oldest
  // request waiting at the new request's priority or above has waited this long: under
  // sustained overload new work gets a quick 503 instead of a place in a queue it would leave
  // only after its client gave up. 0 = bounded by max_queue only.
  std::chrono::nanoseconds max_queue_delay{0};

  // Throws std::invalid_argument naming the offending key (e.g. "max_batch") when a value is
  // out of range. Call once at start; the executor's constructor calls it too.
  void validate() const;
};

}  // namespace talkserve::sched
