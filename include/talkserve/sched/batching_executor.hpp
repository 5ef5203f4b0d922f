#pragma once
// BatchingExecutor<Request, Result>: a bounded priority queue in front of one resident model.
// Every batched stage (ASR, TTS, lip-sync) runs its model through one of these.
//
// Life of a request:
//   enqueue() moves the request in and returns its id at once (or queue_full / stopped; it never
//   blocks). It waits in the queue ordered by priority (lower number first: vip = 0,
//   standard = 1, batch = 2) and FIFO within a priority. A worker thread forms a batch of up to
//   max_batch requests (with max_batch_cost, at most that much summed cost), in that order, when
//     - max_batch requests, or max_batch_cost of cost, are waiting, or
//     - the adaptive batch window has closed: now >= oldest waiting arrival + window
//       (rule in batch_window.hpp: a lone request after a quiet period goes after min_wait,
//       a burst waits up to max_wait for company), or
//     - the executor is draining (stop(StopMode::drain)): no more arrivals can come.
//   The batch function runs on the whole batch outside any lock and returns one result per
//   request, in order. Then each request's callback gets its Expected<Result>.
//
// Load shedding: with max_queue_delay set, enqueue() also refuses (`overloaded`) while the
// oldest request waiting at the new request's priority or above (those it would queue behind)
// has waited max_queue_delay or more. Once the backlog drains below that, requests are
// accepted again. queue_delay() reports the same wait, so a caller can refuse before doing
// costly preparation (decoding an upload) for work that would be shed.
//
// Every accepted request's callback is invoked exactly once:
//   - result / `failed`   on the worker thread, after the batch (an exception thrown by the
//                         batch function, or a wrong result count, fails every request of
//                         that batch; nothing is rethrown),
//   - `deadline_exceeded` on the worker thread, as soon as the deadline passes (now >= deadline)
//                         while still queued; such a request is never run,
//   - `cancelled`         on the thread calling cancel(), before cancel() returns,
//   - `stopped`           on the thread calling stop(StopMode::fail), before stop() returns.
// Priority is strict: under sustained higher-priority load a lower tier waits (bounded by its
// deadline, if it has one); tiers are meant to be few and admission-controlled upstream.
//
// A refused enqueue() (queue_full, stopped) invokes no callback. Callbacks are invoked without
// any executor lock held, so they may call enqueue()/cancel()/stats(); they should be short
// (typically a post to the session's strand) and must not throw: an exception is swallowed
// and counted in stats().callback_exceptions.
//
// All waiting goes through the injected Clock (condition variable + Clock::wait_until, no
// polling), so tests drive it with a ManualClock.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "talkserve/sched/batch_window.hpp"
#include "talkserve/sched/batching_config.hpp"
#include "talkserve/sched/batching_stats.hpp"
#include "talkserve/sched/clock.hpp"
#include "talkserve/sched/expected.hpp"

namespace talkserve::sched {

using RequestId = std::uint64_t;

struct EnqueueOptions {
  int priority = 1;                           // lower runs first; 0 = highest tier
  std::optional<Clock::time_point> deadline;  // on the executor's clock; unset = none
  double cost = 1;  // units of work, for BatchingConfig::max_batch_cost (>= 0)
};

enum class StopMode {
  drain,  // run everything already queued (no batch window), then stop
  fail,   // fail everything queued with `stopped`; running batches still finish
};

template <class Request, class Result>
class BatchingExecutor {
 public:
  using Callback = std::function<void(Expected<Result>)>;
  // Runs the model on a whole batch; may move from the requests. Must return exactly
  // requests.size() results, in order. May throw (see above).
  using BatchFn = std::function<std::vector<Result>(std::vector<Request>&)>;
  using Observer = std::function<void(const BatchReport&)>;

  // Validates `config` (throws std::invalid_argument) and starts config.num_workers threads.
  // `clock` must outlive the executor. `observer` (optional) is called on the worker thread
  // after each batch's callbacks.
  BatchingExecutor(BatchingConfig config, Clock& clock, BatchFn batch_fn, Observer observer = {})
      : config_((config.validate(), std::move(config))),
        clock_(clock),
        batch_fn_(std::move(batch_fn)),
        observer_(std::move(observer)),
        window_(config_.min_wait, config_.max_wait, config_.ewma_alpha, config_.max_batch) {
    if (!batch_fn_)
      throw std::invalid_argument("batching executor '" + config_.name +
                                  "': batch function is empty");
    stats_.batch_size_histogram.assign(config_.max_batch + 1, 0);
    workers_.reserve(config_.num_workers);
    try {
      for (std::size_t i = 0; i < config_.num_workers; ++i) {
        workers_.emplace_back([this] { run_worker(); });
      }
    } catch (...) {
      stop(StopMode::fail);
      throw;
    }
  }

  // Stops with StopMode::fail if stop() was not called.
  ~BatchingExecutor() { stop(StopMode::fail); }

  BatchingExecutor(const BatchingExecutor&) = delete;
  BatchingExecutor& operator=(const BatchingExecutor&) = delete;

  // Takes ownership of `request`. Returns its id, or queue_full when max_queue requests are
  // waiting, or overloaded (see max_queue_delay), or stopped after stop() began; on error no
  // callback is invoked. Never blocks on the model. `done` may be empty.
  // Thread-safety: any thread, concurrently with every other method.
  Expected<RequestId> enqueue(Request request, Callback done, EnqueueOptions options = {}) {
    RequestId id = 0;
    {
      std::lock_guard lock(mutex_);
      if (state_ != State::running) {
        return ExecError{ExecErrc::stopped, "executor '" + config_.name + "' is stopping"};
      }
      if (queue_.size() >= config_.max_queue) {
        ++stats_.rejected;
        return ExecError{ExecErrc::queue_full, "executor '" + config_.name + "' queue is full (" +
                                                   std::to_string(config_.max_queue) + ")"};
      }
      const Clock::time_point now = clock_.now();
      if (config_.max_queue_delay.count() > 0) {
        const Clock::duration waited = queue_delay_locked(options.priority, now);
        if (waited >= config_.max_queue_delay) {
          ++stats_.shed;
          return ExecError{ExecErrc::overloaded,
                           "executor '" + config_.name + "' is overloaded: queued work has waited " +
                               millis(waited) + " ms (max_queue_delay " +
                               millis(config_.max_queue_delay) + " ms)"};
        }
      }
      window_.on_arrival(now);
      id = next_id_++;
      const double cost = options.cost > 0 ? options.cost : 0.0;
      queue_.emplace(Key{options.priority, id},
                     Pending{std::move(request), std::move(done), now, options.deadline, cost});
      queued_cost_ += cost;
      priority_of_.emplace(id, options.priority);
      if (options.deadline) deadlines_.emplace(*options.deadline, id);
      ++stats_.accepted;
    }
    cv_.notify_all();
    return id;
  }

  // Removes a waiting request; its callback gets `cancelled` on this thread before returning
  // true. Returns false when the id is unknown, already running or finished (its callback then
  // gets whatever the run produces).
  // Thread-safety: any thread.
  bool cancel(RequestId id) {
    std::optional<Pending> removed;
    {
      std::lock_guard lock(mutex_);
      const auto it = priority_of_.find(id);
      if (it == priority_of_.end()) return false;
      removed = take_locked(Key{it->second, id});
      ++stats_.cancelled;
    }
    cv_.notify_all();  // the oldest request may have gone: the window moves
    finish(removed->done, ExecError{ExecErrc::cancelled, "cancelled"});
    return true;
  }

  // Refuses new work from now on, then drains or fails the queue (see StopMode) and joins the
  // workers. Idempotent; a second call waits for the first to finish (its mode is ignored).
  // Thread-safety: any thread except a worker: from a worker-side callback, the batch function
  // or the observer it would join itself, so it throws std::logic_error instead.
  void stop(StopMode mode = StopMode::drain) {
    for (const std::thread& t : workers_) {
      if (t.get_id() == std::this_thread::get_id()) {
        throw std::logic_error("BatchingExecutor::stop() called from its own worker thread");
      }
    }
    std::lock_guard stop_lock(stop_mutex_);
    std::vector<Pending> failed;
    {
      std::lock_guard lock(mutex_);
      if (state_ != State::running) return;
      state_ = mode == StopMode::drain ? State::draining : State::failing;
      if (mode == StopMode::fail) {
        failed.reserve(queue_.size());
        for (auto& [key, pending] : queue_) failed.push_back(std::move(pending));
        queue_.clear();
        priority_of_.clear();
        deadlines_.clear();
        stats_.stopped += failed.size();
      }
    }
    cv_.notify_all();
    for (Pending& p : failed) {
      finish(p.done, ExecError{ExecErrc::stopped, "executor '" + config_.name + "' stopped"});
    }
    for (std::thread& t : workers_) {
      if (t.joinable()) t.join();
    }
  }

  // How long the oldest request waiting at `priority` or above (lower number) has waited; zero
  // when none waits. Thread-safety: any thread.
  Clock::duration queue_delay(int priority) const {
    std::lock_guard lock(mutex_);
    return queue_delay_locked(priority, clock_.now());
  }

  // True when enqueue() at `priority` would be refused as overloaded now.
  // Thread-safety: any thread.
  bool overloaded(int priority) const {
    return config_.max_queue_delay.count() > 0 && queue_delay(priority) >= config_.max_queue_delay;
  }

  // Snapshot of the counters. Thread-safety: any thread.
  ExecutorStats stats() const {
    std::lock_guard lock(mutex_);
    ExecutorStats s = stats_;
    s.queue_depth = queue_.size();
    return s;
  }

  // Thread-safety: any thread (immutable after construction).
  const BatchingConfig& config() const noexcept { return config_; }

 private:
  enum class State { running, draining, failing };

  struct Key {
    int priority;
    RequestId id;  // ids grow with arrival, so this orders FIFO within a priority
    bool operator<(const Key& o) const {
      return priority != o.priority ? priority < o.priority : id < o.id;
    }
  };

  struct Pending {
    Request request;
    Callback done;
    Clock::time_point arrival;
    std::optional<Clock::time_point> deadline;
    double cost = 1;
  };

  struct Batch {
    std::vector<Request> requests;
    std::vector<Callback> callbacks;
    std::vector<Clock::duration> waits;
    std::size_t queue_depth = 0;
  };

  // Moves one waiting request out of every index. Requires mutex_.
  Pending take_locked(const Key& key) {
    auto node = queue_.extract(key);
    Pending p = std::move(node.mapped());
    priority_of_.erase(key.id);
    if (p.deadline) deadlines_.erase({*p.deadline, key.id});
    queued_cost_ = queue_.empty() ? 0.0 : std::max(0.0, queued_cost_ - p.cost);
    return p;
  }

  // Requires mutex_. queue_ is ordered by (priority, id), so the first entry of each priority is
  // its oldest; the tiers are few, so this visits a handful of entries.
  Clock::duration queue_delay_locked(int priority, Clock::time_point now) const {
    std::optional<Clock::time_point> oldest;
    for (auto it = queue_.begin(); it != queue_.end() && it->first.priority <= priority;
         it = queue_.lower_bound(Key{it->first.priority + 1, 0})) {
      if (!oldest || it->second.arrival < *oldest) oldest = it->second.arrival;
      if (it->first.priority == std::numeric_limits<int>::max()) break;
    }
    return oldest && now > *oldest ? now - *oldest : Clock::duration::zero();
  }

  static std::string millis(Clock::duration d) {
    return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
  }

  // Requires mutex_ and a non-empty queue. The oldest waiting request has the smallest id.
  Clock::time_point batch_due_locked() const {
    const RequestId oldest = priority_of_.begin()->first;
    const int priority = priority_of_.begin()->second;
    return queue_.find(Key{priority, oldest})->second.arrival + window_.window();
  }

  Batch take_batch_locked(Clock::time_point now) {
    Batch b;
    std::size_t n = std::min(queue_.size(), config_.max_batch);
    if (config_.max_batch_cost > 0) {
      // In queue order while the cap holds; the first request always goes.
      double cost = 0;
      std::size_t fit = 0;
      for (auto it = queue_.begin(); it != queue_.end() && fit < n; ++it, ++fit) {
        if (fit > 0 && cost + it->second.cost > config_.max_batch_cost) break;
        cost += it->second.cost;
      }
      n = fit;
    }
    b.requests.reserve(n);
    b.callbacks.reserve(n);
    b.waits.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      Pending p = take_locked(queue_.begin()->first);
      b.waits.push_back(now - p.arrival);
      stats_.total_queue_wait += b.waits.back();
      b.requests.push_back(std::move(p.request));
      b.callbacks.push_back(std::move(p.done));
    }
    b.queue_depth = queue_.size();
    ++stats_.batches;
    ++stats_.batch_size_histogram[n];
    stats_.in_flight += n;
    return b;
  }

  void run_worker() {
    std::unique_lock lock(mutex_);
    std::vector<Pending> expired;
    for (;;) {
      const Clock::time_point now = clock_.now();
      while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
        const RequestId id = deadlines_.begin()->second;
        expired.push_back(take_locked(Key{priority_of_.at(id), id}));
      }
      if (!expired.empty()) {
        stats_.expired += expired.size();
        lock.unlock();
        for (Pending& p : expired) {
          finish(p.done, ExecError{ExecErrc::deadline_exceeded, "deadline passed while queued"});
        }
        expired.clear();
        lock.lock();
        continue;  // time moved while the callbacks ran
      }
      if (queue_.empty()) {
        if (state_ != State::running) return;
        clock_.wait_until(lock, cv_, Clock::time_point::max());
        continue;
      }
      const Clock::time_point due = state_ == State::draining ? now : batch_due_locked();
      const bool full = queue_.size() >= config_.max_batch ||
                        (config_.max_batch_cost > 0 && queued_cost_ >= config_.max_batch_cost);
      if (full || now >= due) {
        Batch batch = take_batch_locked(now);
        const bool more = !queue_.empty();
        lock.unlock();
        if (more) cv_.notify_all();  // another idle worker may take the rest
        run_batch(batch);
        lock.lock();
        continue;
      }
      Clock::time_point wake = due;
      if (!deadlines_.empty()) wake = std::min(wake, deadlines_.begin()->first);
      clock_.wait_until(lock, cv_, wake);
    }
  }

  // Runs without mutex_ held.
  void run_batch(Batch& b) {
    const std::size_t n = b.requests.size();
    std::vector<Result> results;
    std::optional<ExecError> error;
    const Clock::time_point start = clock_.now();
    try {
      results = batch_fn_(b.requests);
      if (results.size() != n) {
        error = ExecError{ExecErrc::failed, "batch function returned " +
                                                std::to_string(results.size()) + " results for " +
                                                std::to_string(n) + " requests"};
      }
    } catch (const std::exception& e) {
      error = ExecError{ExecErrc::failed, e.what()};
    } catch (...) {
      error = ExecError{ExecErrc::failed, "batch function threw a non-standard exception"};
    }
    const Clock::duration run_time = clock_.now() - start;
    {
      std::lock_guard lock(mutex_);
      stats_.in_flight -= n;
      (error ? stats_.failed : stats_.completed) += n;
    }
    for (std::size_t i = 0; i < n; ++i) {
      if (error) {
        finish(b.callbacks[i], *error);
      } else {
        finish(b.callbacks[i], std::move(results[i]));
      }
    }
    if (observer_) {
      const BatchReport report{config_.name, n, b.queue_depth, b.waits, run_time, !error};
      try {
        observer_(report);
      } catch (...) {
        count_callback_exception();
      }
    }
  }

  // Invokes a user callback, keeping its exceptions on this side of the boundary.
  void finish(Callback& done, Expected<Result> outcome) {
    if (!done) return;
    try {
      done(std::move(outcome));
    } catch (...) {
      count_callback_exception();
    }
  }

  void count_callback_exception() {
    std::lock_guard lock(mutex_);
    ++stats_.callback_exceptions;
  }

  const BatchingConfig config_;
  Clock& clock_;
  const BatchFn batch_fn_;
  const Observer observer_;

  mutable std::mutex mutex_;  // guards everything below except workers_
  std::condition_variable cv_;
  State state_ = State::running;
  BatchWindow window_;
  RequestId next_id_ = 1;
  std::map<Key, Pending> queue_;                                 // batch order
  double queued_cost_ = 0;                                        // summed cost of queue_
  std::map<RequestId, int> priority_of_;                         // arrival order; id -> priority
  std::set<std::pair<Clock::time_point, RequestId>> deadlines_;  // earliest first
  ExecutorStats stats_;

  std::mutex stop_mutex_;  // serialises stop() so threads are joined once
  std::vector<std::thread> workers_;
};

}  // namespace talkserve::sched
