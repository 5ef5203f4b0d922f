#pragma once
// A per-key request quota: at most `limit` admitted requests per fixed window (a day by
// default), on top of the token bucket, which only shapes the rate. Over it the gateway
// answers 429 quota_exceeded with Retry-After set to the window's end.
//
// Windows are fixed, not sliding: [origin + k*window, origin + (k+1)*window). The origin is
// the gateway's start, so a client can tell exactly when its quota comes back; counters live
// in this process (a restart starts a fresh window, several replicas count separately).
//
// Thread-safety: every method may be called concurrently.

#include <cstdint>
#include <mutex>
#include <optional>

#include "talkserve/sched/clock.hpp"

namespace talkserve::gateway {

class RequestQuota {
 public:
  using duration = sched::Clock::duration;
  using time_point = sched::Clock::time_point;

  // limit >= 1 and window > 0, else std::invalid_argument.
  RequestQuota(std::uint64_t limit, duration window, time_point origin);

  // Counts one request. Returns nullopt when it fits; otherwise the time until the current
  // window ends (when the quota is whole again). A `now` before the origin counts in window 0.
  std::optional<duration> try_take(time_point now);
  // Undoes a try_take() of the same window (the request was refused for another reason).
  void give_back(time_point now);
  // Requests counted in the window that holds `now`.
  std::uint64_t used(time_point now) const;

  std::uint64_t limit() const { return limit_; }
  duration window() const { return window_; }

 private:
  std::int64_t window_index(time_point now) const;

  const std::uint64_t limit_;
  const duration window_;
  const time_point origin_;
  mutable std::mutex mutex_;
  std::int64_t index_ = 0;  // the window `used_` belongs to
  std::uint64_t used_ = 0;
};

}  // namespace talkserve::gateway
