#pragma once
// A token bucket (rate, burst) driven by the injected clock's time points.
//
// Implemented as GCRA (the "virtual scheduling" form of a token bucket): one atomic
// theoretical-arrival time in integer nanoseconds instead of a fractional token count, so
// refills are exact (no float drift in tests) and try_take() is a lock-free CAS.

#include <atomic>
#include <cstdint>
#include <optional>

#include "talkserve/sched/clock.hpp"

namespace talkserve::gateway {

class TokenBucket {
 public:
  using duration = sched::Clock::duration;
  using time_point = sched::Clock::time_point;

  // rate_per_s > 0 and burst >= 1, both finite; otherwise std::invalid_argument.
  // The bucket starts full.
  TokenBucket(double rate_per_s, double burst);

  // Takes one token. Returns nullopt when taken; otherwise how long until one is available.
  // Thread-safe and lock-free. `now` should not go backwards (an earlier `now` is treated as
  // no refill, never as extra tokens).
  std::optional<duration> try_take(time_point now);

  // Whole tokens available at `now` (for X-RateLimit-Remaining style headers). Thread-safe.
  double available(time_point now) const;

  double rate_per_s() const { return rate_per_s_; }
  double burst() const { return burst_; }

 private:
  double rate_per_s_;
  double burst_;
  std::int64_t interval_ns_;          // time to earn one token
  std::int64_t tolerance_ns_;         // (burst - 1) * interval: how far ahead the schedule may run
  std::atomic<std::int64_t> tat_ns_;  // theoretical arrival time of the next conforming take
};

}  // namespace talkserve::gateway
