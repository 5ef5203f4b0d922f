#pragma once
// Injectable clocks. Anything that waits, batches or rate-limits takes a Clock& so that tests
// drive time by hand (ManualClock) instead of sleeping.
//
// Thread-safety: every method of both clocks may be called from any thread.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace talkserve::sched {

class Clock {
 public:
  using duration = std::chrono::nanoseconds;
  using time_point = std::chrono::time_point<std::chrono::steady_clock, duration>;

  virtual ~Clock() = default;
  virtual time_point now() const = 0;

  // Blocks on `cv` (with `lock` held on entry and exit) until notified or until `deadline`
  // on this clock has passed. Returns false when the deadline passed. Spurious wake-ups are
  // allowed, as with std::condition_variable; callers re-check their predicate.
  // `deadline == time_point::max()` waits for a notification only.
  virtual bool wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                          time_point deadline) = 0;
};

// Real monotonic time (std::chrono::steady_clock).
class SteadyClock final : public Clock {
 public:
  time_point now() const override;
  bool wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                  time_point deadline) override;
};

// Time that moves only when a test calls advance()/set().
//
// wait_until() blocks until the condition variable is notified or until advance()/set()
// moves time; every time move wakes *every* blocked waiter (whether its deadline is reached
// or not) so it re-checks its own predicate. Wake-ups are never lost: a waiter registers with
// the clock while still holding its own mutex, and advance() takes that mutex before
// notifying, so a time move either happens before the waiter reads the time or finds it
// already blocked.
//
// Test helpers: waiters() / waits_started() and the blocking wait_for_*() functions let a test
// know that a worker thread is parked in wait_until() without sleeping. Because a worker
// re-reads all of its state between wake-up and its next wait_until(), "waits_started() grew
// by one after my action" means "the worker has fully reacted to my action" (for a single
// worker that was parked before the action and whose waits all go through this clock).
class ManualClock final : public Clock {
 public:
  explicit ManualClock(time_point start = time_point{}) : now_(start) {}
  ManualClock(const ManualClock&) = delete;
  ManualClock& operator=(const ManualClock&) = delete;

  time_point now() const override;
  bool wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                  time_point deadline) override;

  // Moves time forward and wakes all waiters. d must be >= 0 (throws std::invalid_argument).
  // Must not be called while holding a mutex that a blocked waiter passed to wait_until().
  void advance(duration d);
  // Sets the time; t must not be earlier than now() (a steady clock never goes back;
  // throws std::invalid_argument). Same locking rule as advance().
  void set(time_point t);

  // Number of threads currently blocked in wait_until().
  std::size_t waiters() const;
  // Total number of wait_until() calls so far that blocked (did not return at once).
  std::uint64_t waits_started() const;
  // Blocks the caller until waiters() >= n.
  void wait_for_waiters(std::size_t n) const;
  // Blocks the caller until waits_started() >= n.
  void wait_for_waits_started(std::uint64_t n) const;

 private:
  // One blocked wait_until() call; lives on the waiter's stack.
  struct Waiter {
    std::mutex* mutex;
    std::condition_variable* cv;
    int pins = 0;  // advance() calls that still hold a pointer to this record
  };

  std::vector<Waiter*> pin_waiters_locked();
  void notify_pinned(const std::vector<Waiter*>& pinned);

  mutable std::mutex mutex_;
  // Signalled when the waiter set changes or a pin is released.
  mutable std::condition_variable changed_;
  time_point now_;
  std::vector<Waiter*> waiters_;
  std::uint64_t waits_started_ = 0;
};

// The process-wide real clock.
Clock& steady_clock();

}  // namespace talkserve::sched
