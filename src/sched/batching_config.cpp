#include "talkserve/sched/batching_config.hpp"

#include <stdexcept>
#include <string>

namespace talkserve::sched {

namespace {

[[noreturn]] void reject(const BatchingConfig& c, const char* key, const std::string& why) {
  throw std::invalid_argument("batching config '" + c.name + "': " + key + " " + why);
}

std::string ns(std::chrono::nanoseconds d) {
  return std::to_string(d.count()) + "ns";
}

}  // namespace

void BatchingConfig::validate() const {
  if (name.empty()) reject(*this, "name", "must not be empty");
  if (max_batch < 1) reject(*this, "max_batch", "must be >= 1 (got 0)");
  if (max_queue < 1) reject(*this, "max_queue", "must be >= 1 (got 0)");
  if (min_wait.count() < 0) reject(*this, "min_wait", "must be >= 0 (got " + ns(min_wait) + ")");
  if (max_wait < min_wait) {
    reject(*this, "max_wait",
           "must be >= min_wait (got " + ns(max_wait) + " < " + ns(min_wait) + ")");
  }
  // Written so that NaN fails too.
  if (!(ewma_alpha > 0.0 && ewma_alpha <= 1.0)) {
    reject(*this, "ewma_alpha", "must be in (0, 1] (got " + std::to_string(ewma_alpha) + ")");
  }
  if (num_workers < 1) reject(*this, "num_workers", "must be >= 1 (got 0)");
  if (max_queue_delay.count() < 0) {
    reject(*this, "max_queue_delay", "must be >= 0 (got " + ns(max_queue_delay) + ")");
  }
  // A request held by the batch window alone must not look like a backlog.
  if (max_queue_delay.count() > 0 && max_queue_delay <= max_wait) {
    reject(*this, "max_queue_delay",
           "must be 0 (off) or longer than max_wait (got " + ns(max_queue_delay) + " <= " +
               ns(max_wait) + ")");
  }
  if (!(max_batch_cost >= 0)) {
    reject(*this, "max_batch_cost", "must be >= 0 (got " + std::to_string(max_batch_cost) + ")");
  }
}

}  // namespace talkserve::sched
