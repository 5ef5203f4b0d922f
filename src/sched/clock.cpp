#include "talkserve/sched/clock.hpp"

#include <algorithm>
#include <stdexcept>

namespace talkserve::sched {

// ---- SteadyClock ----------------------------------------------------------------------------

Clock::time_point SteadyClock::now() const {
  return std::chrono::time_point_cast<duration>(std::chrono::steady_clock::now());
}

bool SteadyClock::wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                             time_point deadline) {
  if (deadline == time_point::max()) {
    // A far-future timed wait would overflow inside the timespec conversion; wait untimed.
    cv.wait(lock);
    return true;
  }
  return cv.wait_until(lock, deadline) == std::cv_status::no_timeout;
}

Clock& steady_clock() {
  static SteadyClock clock;
  return clock;
}

// ---- ManualClock ----------------------------------------------------------------------------
//
// Lock order: a waiter holds its own mutex L and then takes the clock's mutex_ M. advance()
// never holds M while taking L: it pins the waiter records under M, releases M, then takes each
// L to notify. A returning waiter that finds its record pinned releases L before waiting for
// the pins to go, so the notifier can finish; the pins keep its mutex and cv alive meanwhile.

Clock::time_point ManualClock::now() const {
  std::lock_guard guard(mutex_);
  return now_;
}

bool ManualClock::wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                             time_point deadline) {
  Waiter self{lock.mutex(), &cv};
  {
    std::lock_guard guard(mutex_);
    if (now_ >= deadline) return false;
    waiters_.push_back(&self);
    ++waits_started_;
  }
  changed_.notify_all();

  cv.wait(lock);  // woken by the caller's own notify or by a time move

  std::unique_lock guard(mutex_);
  waiters_.erase(std::find(waiters_.begin(), waiters_.end(), &self));
  if (self.pins != 0) {
    // A concurrent advance() will lock our mutex to notify; let it, then wait until it has
    // let go of our record before returning (our caller may destroy the cv right after).
    lock.unlock();
    changed_.wait(guard, [&] { return self.pins == 0; });
    guard.unlock();
    lock.lock();
    guard.lock();
  }
  const bool timed_out = now_ >= deadline;
  guard.unlock();
  changed_.notify_all();
  return !timed_out;
}

void ManualClock::advance(duration d) {
  if (d < duration::zero()) throw std::invalid_argument("ManualClock::advance: negative duration");
  std::vector<Waiter*> pinned;
  {
    std::lock_guard guard(mutex_);
    now_ += d;
    pinned = pin_waiters_locked();
  }
  notify_pinned(pinned);
}

void ManualClock::set(time_point t) {
  std::vector<Waiter*> pinned;
  {
    std::lock_guard guard(mutex_);
    if (t < now_) throw std::invalid_argument("ManualClock::set: time may not go backwards");
    now_ = t;
    pinned = pin_waiters_locked();
  }
  notify_pinned(pinned);
}

std::vector<ManualClock::Waiter*> ManualClock::pin_waiters_locked() {
  for (Waiter* w : waiters_) ++w->pins;
  return waiters_;
}

void ManualClock::notify_pinned(const std::vector<Waiter*>& pinned) {
  for (Waiter* w : pinned) {
    // Taking the waiter's mutex orders this notify after its check of now_: it is either
    // blocked in cv.wait (and wakes) or has not read the time yet (and sees the new one).
    std::lock_guard waiter_lock(*w->mutex);
    w->cv->notify_all();
  }
  if (pinned.empty()) return;
  {
    std::lock_guard guard(mutex_);
    for (Waiter* w : pinned) --w->pins;
  }
  changed_.notify_all();
}

std::size_t ManualClock::waiters() const {
  std::lock_guard guard(mutex_);
  return waiters_.size();
}

std::uint64_t ManualClock::waits_started() const {
  std::lock_guard guard(mutex_);
  return waits_started_;
}

void ManualClock::wait_for_waiters(std::size_t n) const {
  std::unique_lock guard(mutex_);
  changed_.wait(guard, [&] { return waiters_.size() >= n; });
}

void ManualClock::wait_for_waits_started(std::uint64_t n) const {
  std::unique_lock guard(mutex_);
  changed_.wait(guard, [&] { return waits_started_ >= n; });
}

}  // namespace talkserve::sched
