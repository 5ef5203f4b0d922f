#pragma once
// The series every BatchingExecutor exports, labelled by executor name:
//   talkserve_batch_size{executor}            histogram of requests per batch
//   talkserve_queue_depth{executor}           waiting requests (polled at scrape time)
//   talkserve_queue_wait_seconds{executor}    time from enqueue to batch start
//   talkserve_batch_run_seconds{executor}     time the model spent on a batch
//   talkserve_batch_failures_total{executor}  batches whose model call failed
// observer() is handed to the executor's constructor; attach_queue_depth() once it exists.
//
// Thread-safety: observer() may be called on any worker thread; the rest at start/stop.

#include <functional>
#include <string>

#include "talkserve/obs/metrics.hpp"
#include "talkserve/sched/batching_stats.hpp"

namespace talkserve::obs {

class ExecutorMetrics {
 public:
  ExecutorMetrics(MetricsRegistry& registry, std::string executor);
  ~ExecutorMetrics();
  ExecutorMetrics(const ExecutorMetrics&) = delete;
  ExecutorMetrics& operator=(const ExecutorMetrics&) = delete;

  std::function<void(const sched::BatchReport&)> observer();
  // Registers the queue-depth gauge, read through `depth` at scrape time; removed in the
  // destructor, so `depth` must stay valid until then.
  void attach_queue_depth(std::function<double()> depth);

 private:
  MetricsRegistry& registry_;
  std::string executor_;
  Histogram& batch_size_;
  Histogram& queue_wait_;
  Histogram& run_time_;
  Counter& failures_;
  bool depth_attached_ = false;
};

}  // namespace talkserve::obs
