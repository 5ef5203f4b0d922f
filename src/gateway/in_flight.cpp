#include "talkserve/gateway/in_flight.hpp"

#include "talkserve/obs/metrics.hpp"

namespace talkserve::gateway {

InFlightPermit& InFlightPermit::operator=(InFlightPermit&& o) noexcept {
  if (this != &o) {
    release();
    owner_ = o.owner_;
    o.owner_ = nullptr;
  }
  return *this;
}

void InFlightPermit::release() {
  if (owner_) {
    owner_->release_one();
    owner_ = nullptr;
  }
}

InFlightLimiter::InFlightLimiter(std::size_t max_in_flight, obs::Gauge* gauge)
    : max_(max_in_flight), gauge_(gauge) {}

InFlightPermit InFlightLimiter::try_acquire() {
  std::size_t n = count_.load(std::memory_order_relaxed);
  do {
    if (n >= max_) return InFlightPermit{};
  } while (!count_.compare_exchange_weak(n, n + 1, std::memory_order_acq_rel));
  if (gauge_) gauge_->inc();
  return InFlightPermit{this};
}

void InFlightLimiter::release_one() {
  count_.fetch_sub(1, std::memory_order_acq_rel);
  if (gauge_) gauge_->dec();
}

}  // namespace talkserve::gateway
