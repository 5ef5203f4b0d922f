#include "talkserve/gateway/token_bucket.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace talkserve::gateway {

namespace {
constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::min();
}

TokenBucket::TokenBucket(double rate_per_s, double burst)
    : rate_per_s_(rate_per_s), burst_(burst), tat_ns_(kNever) {
  if (!std::isfinite(rate_per_s) || !(rate_per_s > 0))
    throw std::invalid_argument("TokenBucket: rate_per_s must be finite and > 0");
  if (!std::isfinite(burst) || !(burst >= 1))
    throw std::invalid_argument("TokenBucket: burst must be finite and >= 1");
  // Rates below one per ~292 years would overflow; clamp rather than fail.
  const double interval = std::min(1e9 / rate_per_s, 9.2e18 / std::max(burst, 1.0));
  interval_ns_ = std::max<std::int64_t>(1, std::llround(interval));
  tolerance_ns_ = std::llround((burst - 1.0) * static_cast<double>(interval_ns_));
}

std::optional<TokenBucket::duration> TokenBucket::try_take(time_point now) {
  const std::int64_t t = now.time_since_epoch().count();
  std::int64_t tat = tat_ns_.load(std::memory_order_relaxed);
  for (;;) {
    const std::int64_t base = std::max(tat, t);
    const std::int64_t ahead = base - t;  // how far the schedule runs ahead of now
    if (ahead > tolerance_ns_) return duration(ahead - tolerance_ns_);
    if (tat_ns_.compare_exchange_weak(tat, base + interval_ns_, std::memory_order_relaxed))
      return std::nullopt;
  }
}

double TokenBucket::available(time_point now) const {
  const std::int64_t t = now.time_since_epoch().count();
  const std::int64_t ahead = std::max(tat_ns_.load(std::memory_order_relaxed), t) - t;
  const double tokens =
      std::floor(static_cast<double>(tolerance_ns_ - ahead) / static_cast<double>(interval_ns_)) +
      1.0;
  return std::clamp(tokens, 0.0, std::floor(burst_));
}

}  // namespace talkserve::gateway
