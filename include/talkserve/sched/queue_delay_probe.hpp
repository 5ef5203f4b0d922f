#pragma once
// QueueDelayProbe: how long work posted now to a FIFO pool (an asio::thread_pool, say) would wait
// before a thread takes it, measured with a tiny probe task instead of timestamps on every post.
//
// delay() returns how long the probe in the pool has been waiting so far; when no probe is in
// the pool (the last one has run), it posts a fresh one and returns 0. Under a backlog the
// probe sits behind the queued work and its age grows to the pool's queueing delay; once the
// pool reaches it, the next call starts a new measurement. At most one probe is in the pool at
// a time, and only callers of delay() post one: an idle server posts nothing. The admission
// check of a stage whose work runs on such a pool is then `delay() >= bound`: over it, refuse
// new work (503) rather than queue it behind a backlog its client would time out in. Work
// already admitted is never touched. After a backlog drains, the first call finds no probe out
// and admits: a finished measurement is never reused, so a drained pool is not mistaken for a
// busy one.
//
// Thread-safety: delay() and overloaded() from any thread. The probe holds the shared state, so
// a probe that runs after the QueueDelayProbe is gone is harmless; `clock` must outlive both.

#include <functional>
#include <memory>
#include <mutex>

#include "talkserve/sched/clock.hpp"

namespace talkserve::sched {

class QueueDelayProbe {
 public:
  // Posts a task to the pool being measured; must not run it inline.
  using Post = std::function<void(std::function<void()>)>;

  // `max_delay` <= 0 turns overloaded() off (delay() still measures).
  QueueDelayProbe(Clock& clock, Post post, Clock::duration max_delay)
      : state_(std::make_shared<State>(clock)), post_(std::move(post)), max_delay_(max_delay) {}

  Clock::duration delay() {
    {
      std::lock_guard lock(state_->mutex);
      const Clock::time_point now = state_->clock.now();
      if (state_->outstanding) {
        return now > state_->posted ? now - state_->posted : Clock::duration::zero();
      }
      state_->outstanding = true;
      state_->posted = now;
    }
    try {
      post_([s = state_] {
        std::lock_guard lock(s->mutex);
        s->outstanding = false;
      });
    } catch (...) {  // the pool refused (stopping): measure again next time
      std::lock_guard lock(state_->mutex);
      state_->outstanding = false;
    }
    return Clock::duration::zero();
  }

  // True when max_delay is set and delay() has reached it.
  bool overloaded() { return max_delay_.count() > 0 && delay() >= max_delay_; }

  Clock::duration max_delay() const noexcept { return max_delay_; }

 private:
  struct State {
    explicit State(Clock& c) : clock(c) {}
    Clock& clock;
    std::mutex mutex;
    bool outstanding = false;
    Clock::time_point posted{};
  };

  std::shared_ptr<State> state_;
  Post post_;
  Clock::duration max_delay_;
};

}  // namespace talkserve::sched
