#pragma once
// What a BatchingExecutor reports about itself: a polled snapshot (ExecutorStats) and a
// per-batch push (BatchReport) for the metrics module. sched does not depend on obs; the server
// wires a BatchReport observer into talkserve_batch_size{executor}, talkserve_queue_depth, ...
//
// Thread-safety: plain value types.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "talkserve/sched/clock.hpp"

namespace talkserve::sched {

struct ExecutorStats {
  std::size_t queue_depth = 0;  // waiting, not yet running
  std::size_t in_flight = 0;    // requests inside a running batch
  std::uint64_t batches = 0;    // batch function calls
  // batch_size_histogram[n] = number of batches of exactly n requests; size max_batch + 1
  // (index 0 stays 0).
  std::vector<std::uint64_t> batch_size_histogram;
  Clock::duration total_queue_wait{0};    // sum over dispatched requests of (dispatch - arrival)
  std::uint64_t accepted = 0;             // enqueue() calls that returned an id
  std::uint64_t rejected = 0;             // enqueue() calls refused with queue_full
  std::uint64_t shed = 0;                 // enqueue() calls refused with overloaded
  std::uint64_t completed = 0;            // callbacks with a result
  std::uint64_t failed = 0;               // callbacks with `failed` (batch function error)
  std::uint64_t cancelled = 0;            // callbacks with `cancelled`
  std::uint64_t expired = 0;              // callbacks with `deadline_exceeded`
  std::uint64_t stopped = 0;              // callbacks with `stopped` (queued work failed by stop)
  std::uint64_t callback_exceptions = 0;  // user callbacks/observer that threw (swallowed)
};

// Passed to the observer after each batch, on the worker thread that ran it.
struct BatchReport {
  std::string_view executor;  // BatchingConfig::name
  std::size_t batch_size = 0;
  std::size_t queue_depth = 0;                   // waiting requests right after the batch formed
  std::span<const Clock::duration> queue_waits;  // per request, in batch order
  Clock::duration run_time{0};                   // time spent in the batch function
  bool ok = true;                                // false when the batch function failed
};

}  // namespace talkserve::sched
