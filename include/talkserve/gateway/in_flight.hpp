#pragma once
// The global bound on admitted-but-unfinished requests, and the RAII permit for one slot.

#include <atomic>
#include <cstddef>

namespace talkserve::obs {
class Gauge;
}

namespace talkserve::gateway {

class InFlightLimiter;

// Holds one in-flight slot; releases it on destruction or release(). Move-only. An empty
// (default or moved-from) permit holds nothing. A permit must be released before its limiter
// is destroyed. Not thread-safe itself (own it from one place), but permits of one limiter may
// be released concurrently.
class InFlightPermit {
 public:
  InFlightPermit() = default;
  ~InFlightPermit() { release(); }
  InFlightPermit(InFlightPermit&& o) noexcept : owner_(o.owner_) { o.owner_ = nullptr; }
  InFlightPermit& operator=(InFlightPermit&& o) noexcept;
  InFlightPermit(const InFlightPermit&) = delete;
  InFlightPermit& operator=(const InFlightPermit&) = delete;

  void release();
  bool holds_slot() const { return owner_ != nullptr; }
  explicit operator bool() const { return holds_slot(); }

 private:
  friend class InFlightLimiter;
  explicit InFlightPermit(InFlightLimiter* owner) : owner_(owner) {}
  InFlightLimiter* owner_ = nullptr;
};

// Thread-safety: every method may be called from any thread (lock-free).
class InFlightLimiter {
 public:
  // `gauge`, if given, tracks the count and must outlive the limiter.
  explicit InFlightLimiter(std::size_t max_in_flight, obs::Gauge* gauge = nullptr);
  InFlightLimiter(const InFlightLimiter&) = delete;
  InFlightLimiter& operator=(const InFlightLimiter&) = delete;

  // A permit holding a slot, or an empty permit when max_in_flight slots are taken.
  InFlightPermit try_acquire();
  std::size_t in_flight() const { return count_.load(std::memory_order_relaxed); }
  std::size_t max_in_flight() const { return max_; }

 private:
  friend class InFlightPermit;
  void release_one();
  const std::size_t max_;
  std::atomic<std::size_t> count_{0};
  obs::Gauge* gauge_;
};

}  // namespace talkserve::gateway
