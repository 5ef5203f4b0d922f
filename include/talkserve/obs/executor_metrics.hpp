#pragma once
// The series every BatchingExecutor exports, labelled by executor name:
//   talkserve_batch_size{executor}            histogram of requests per batch
//   talkserve_queue_depth{executor}           waiting requests (polled at scrape time)
//   talkserve_queue_wait_seconds{executor}    time from enqueue to batch start
//   talkserve_batch_run_seconds{executor}     time the model spent on a batch
//   talkserve_batch_failures_total{executor}  batches whose model call failed
//   talkserve_queue_rejected_total{executor,reason}  requests refused at enqueue: queue_full
//                                             (max_queue) or overloaded (max_queue_delay, load
//                                             shedding); or dropped unrun: expired (their
//                                             deadline passed while queued)
// observer() is handed to the executor's constructor; attach_queue_depth() once it exists.
//
// Thread-safety: observer() may be called on any worker thread; the rest at start/stop.

#include <functional>
#include <string>

#include "talkserve/obs/metrics.hpp"
#include "talkserve/sched/batching_stats.hpp"
#include "talkserve/sched/expected.hpp"

namespace talkserve::obs {

// The talkserve_queue_rejected_total{executor,reason} series, for queues that are not a
// BatchingExecutor (the talk pipeline's pool) but shed load the same way.
Counter& queue_rejected_counter(MetricsRegistry& registry, const std::string& executor,
                                const std::string& reason);

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
  // Counts a refused enqueue (queue_full, overloaded) or a request dropped unrun because its
  // deadline passed (deadline_exceeded, as reason "expired"); other codes are ignored.
  // Thread-safety: any thread.
  void count_rejection(sched::ExecErrc code);

 private:
  MetricsRegistry& registry_;
  std::string executor_;
  Histogram& batch_size_;
  Histogram& queue_wait_;
  Histogram& run_time_;
  Counter& failures_;
  Counter& rejected_full_;
  Counter& rejected_overloaded_;
  Counter& rejected_expired_;
  bool depth_attached_ = false;
};

}  // namespace talkserve::obs
