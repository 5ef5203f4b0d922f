#include "talkserve/sched/batch_window.hpp"

#include <algorithm>
#include <cmath>

namespace talkserve::sched {

BatchWindow::BatchWindow(Clock::duration min_wait, Clock::duration max_wait, double alpha,
                         std::size_t max_batch)
    : min_wait_(min_wait), max_wait_(max_wait), alpha_(alpha), max_batch_(max_batch) {}

void BatchWindow::on_arrival(Clock::time_point t) {
  if (last_arrival_) {
    const Clock::duration gap = std::max(t - *last_arrival_, Clock::duration::zero());
    const double sample = static_cast<double>(std::min(gap, 2 * max_wait_).count());
    if (!ewma_ns_ || gap > max_wait_) {
      ewma_ns_ = sample;
    } else {
      ewma_ns_ = alpha_ * sample + (1.0 - alpha_) * *ewma_ns_;
    }
  }
  last_arrival_ = t;
}

std::optional<Clock::duration> BatchWindow::ewma_gap() const {
  if (!ewma_ns_) return std::nullopt;
  return Clock::duration(static_cast<Clock::duration::rep>(std::llround(*ewma_ns_)));
}

bool BatchWindow::quiet() const {
  return !ewma_ns_ || *ewma_ns_ > static_cast<double>(max_wait_.count());
}

Clock::duration BatchWindow::window() const {
  if (quiet()) return min_wait_;
  const double fill_ns = *ewma_ns_ * static_cast<double>(max_batch_ - 1);
  const double clamped = std::clamp(fill_ns, static_cast<double>(min_wait_.count()),
                                    static_cast<double>(max_wait_.count()));
  return Clock::duration(static_cast<Clock::duration::rep>(std::llround(clamped)));
}

}  // namespace talkserve::sched
