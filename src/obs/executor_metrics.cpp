#include "talkserve/obs/executor_metrics.hpp"

#include <chrono>

namespace talkserve::obs {

namespace {
constexpr const char* kRejectedHelp =
    "Requests an executor queue refused: queue_full (max_queue waiting) or overloaded (load "
    "shedding by queue delay); or dropped unrun: expired (queued past their deadline)";
}  // namespace

Counter& queue_rejected_counter(MetricsRegistry& registry, const std::string& executor,
                                const std::string& reason) {
  return registry.counter("talkserve_queue_rejected_total", kRejectedHelp,
                          {{"executor", executor}, {"reason", reason}});
}

ExecutorMetrics::ExecutorMetrics(MetricsRegistry& registry, std::string executor)
    : registry_(registry),
      executor_(std::move(executor)),
      batch_size_(registry.histogram("talkserve_batch_size",
                                     "Requests merged into one executor batch (LLM: sequences "
                                     "in one forward step)",
                                     exponential_buckets(1, 2, 10), {{"executor", executor_}})),
      queue_wait_(registry.histogram("talkserve_queue_wait_seconds",
                                     "Time a request waited in an executor queue before its "
                                     "batch started",
                                     exponential_buckets(0.0005, 2, 16), {{"executor", executor_}})),
      run_time_(registry.histogram("talkserve_batch_run_seconds",
                                   "Time the model spent on one executor batch",
                                   exponential_buckets(0.001, 2, 16), {{"executor", executor_}})),
      failures_(registry.counter("talkserve_batch_failures_total",
                                 "Executor batches whose model call failed",
                                 {{"executor", executor_}})),
      rejected_full_(queue_rejected_counter(registry, executor_, "queue_full")),
      rejected_overloaded_(queue_rejected_counter(registry, executor_, "overloaded")),
      rejected_expired_(queue_rejected_counter(registry, executor_, "expired")) {}

ExecutorMetrics::~ExecutorMetrics() {
  if (depth_attached_) registry_.remove_callback_gauge("talkserve_queue_depth", {{"executor", executor_}});
}

std::function<void(const sched::BatchReport&)> ExecutorMetrics::observer() {
  return [this](const sched::BatchReport& r) {
    using Seconds = std::chrono::duration<double>;
    batch_size_.observe(static_cast<double>(r.batch_size));
    for (const auto& w : r.queue_waits) queue_wait_.observe(Seconds(w).count());
    run_time_.observe(Seconds(r.run_time).count());
    if (!r.ok) failures_.inc();
  };
}

void ExecutorMetrics::count_rejection(sched::ExecErrc code) {
  if (code == sched::ExecErrc::queue_full) rejected_full_.inc();
  if (code == sched::ExecErrc::overloaded) rejected_overloaded_.inc();
  if (code == sched::ExecErrc::deadline_exceeded) rejected_expired_.inc();
}

void ExecutorMetrics::attach_queue_depth(std::function<double()> depth) {
  registry_.callback_gauge("talkserve_queue_depth", "Requests waiting in an executor queue",
                           {{"executor", executor_}}, std::move(depth));
  depth_attached_ = true;
}

}  // namespace talkserve::obs
