#pragma once
// A per-key request quota: at most `limit` admitted requests per fixed window (a day by
// default), on top of the token bucket, which only shapes the rate. Over it the gateway
// answers 429 quota_exceeded with Retry-After set to the window's end.
//
// Windows are fixed, not sliding: [origin + k*window, origin + (k+1)*window), so a client can
// tell exactly when its quota comes back. The server puts the origin on a multiple of the
// window in UTC (a day starts at 00:00 UTC), the same on every replica.
//
// Shared counts (several replicas, QuotaSync over Redis): admission stays local and never
// waits on the network. The quota keeps what this replica admitted (`used`) and what the other
// replicas had admitted at the last exchange (`others`), and refuses once used + others reaches
// the limit. A sync takes the requests counted since the last one (take_unsynced), adds them to
// the shared counter, and hands back its new total (apply_shared), from which `others` follows;
// a failed exchange gives them back (restore_unsynced) for the next one. Between two syncs the
// replicas together may admit a little over the limit: at most what the others admitted in
// that interval. Without syncs the quota is this replica's alone.
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

  // Requests counted in the window that holds `now`, this replica's and (after a sync) the
  // other replicas'.
  std::uint64_t used_shared(time_point now) const;

  // Window index of `now` (0 before the origin): the key of the shared counter.
  std::int64_t window_index(time_point now) const;

  struct Unsynced {
    std::int64_t window = 0;  // window_index() the requests were counted in
    std::int64_t count = 0;   // may be negative: a give_back() after the last sync
  };
  // Requests counted here since the last call, in the window that holds `now` (rolling over to
  // it first); they are counted as synced from now on.
  Unsynced take_unsynced(time_point now);
  // The shared counter of `window` after this replica's sync: `total` includes every request
  // this replica has synced, so the other replicas' share is total minus those. Ignored when
  // the window is over.
  void apply_shared(std::int64_t window, std::int64_t total);
  // The sync of `u` failed: its requests are unsynced again (for the next sync).
  void restore_unsynced(const Unsynced& u);

  std::uint64_t limit() const { return limit_; }
  duration window() const { return window_; }

 private:
  void roll_locked(std::int64_t index);

  const std::uint64_t limit_;
  const duration window_;
  const time_point origin_;
  mutable std::mutex mutex_;
  std::int64_t index_ = 0;  // the window `used_` belongs to
  std::uint64_t used_ = 0;    // admitted by this replica in window index_
  std::int64_t synced_ = 0;   // of used_, those added to the shared counter (may exceed used_)
  std::uint64_t others_ = 0;  // the other replicas' count at the last sync
};

}  // namespace talkserve::gateway
