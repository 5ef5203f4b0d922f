#include "talkserve/llm/engine.hpp"

#include <algorithm>
#include <exception>

namespace talkserve::llm {

Engine::Engine(ModelRunner& runner, EngineConfig config, sched::Clock& clock,
               DetokenizerFactory detokenizer, EngineObserver* observer)
    : info_(runner.info()),
      block_size_(runner.block_size()),
      num_blocks_(runner.num_blocks()),
      has_detokenizer_(static_cast<bool>(detokenizer)),
      clock_(clock),
      core_(runner, std::move(config), clock, std::move(detokenizer), observer) {
  stats_ = core_.stats();
}

Engine::~Engine() { stop(); }

void Engine::start() {
  std::lock_guard lock(mutex_);
  if (started_ || stopping_) return;
  started_ = true;
  thread_ = std::thread([this] { run(); });
}

SubmitResult Engine::submit(GenerationRequest request) {
  SubmitResult result;
  // Validated here, on the caller's thread, so that a bad request is answered at once.
  result.error = validate_request(request, info_, block_size_, num_blocks_, has_detokenizer_);
  if (!result.error.empty()) return result;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) {
      result.error = "engine is stopped";
      return result;
    }
    result.id = next_id_++;
    inbox_.push_back({result.id, std::move(request), clock_.now()});
  }
  wake_.notify_one();
  return result;
}

void Engine::cancel(RequestId id) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    cancels_.push_back(id);
  }
  wake_.notify_one();
}

void Engine::stop() {
  std::lock_guard stop_lock(stop_mutex_);  // serialises concurrent stop() calls
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
  // Never started (or already joined): finish what was queued so every caller hears back.
  std::deque<Incoming> left;
  {
    std::lock_guard lock(mutex_);
    left.swap(inbox_);
  }
  for (auto& in : left) core_.add_request(in.id, std::move(in.request), in.arrival);
  core_.abort_all(FinishReason::cancelled, "engine stopped");
  EngineStats snapshot = core_.stats();
  std::lock_guard lock(mutex_);
  stats_ = snapshot;
}

EngineStats Engine::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

sched::Clock::duration Engine::queue_delay(int priority) const {
  std::optional<sched::Clock::time_point> oldest;
  {
    std::lock_guard lock(mutex_);
    for (int p = 0; p <= std::clamp(priority, 0, 2); ++p) {
      const auto& t = stats_.oldest_unscheduled[static_cast<std::size_t>(p)];
      if (t && (!oldest || *t < *oldest)) oldest = t;
    }
  }
  if (!oldest) return sched::Clock::duration::zero();
  return std::max(sched::Clock::duration::zero(), clock_.now() - *oldest);
}

void Engine::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    // core_.has_work() is read on the engine thread, which is the only thread touching core_.
    wake_.wait(lock, [&] {
      return stopping_ || !inbox_.empty() || !cancels_.empty() || core_.has_work();
    });
    if (stopping_) break;
    std::deque<Incoming> incoming;
    incoming.swap(inbox_);
    std::vector<RequestId> cancels;
    cancels.swap(cancels_);
    lock.unlock();

    // Validated in submit(); add_request cannot fail here except on a duplicate id, which
    // the id counter rules out.
    try {
      for (auto& in : incoming) core_.add_request(in.id, std::move(in.request), in.arrival);
      for (RequestId id : cancels) core_.cancel(id);
      if (core_.has_work()) core_.step();
    } catch (const std::exception& e) {
      // Model failures are handled inside step(); this is a bug or out of memory. Fail what is
      // in flight rather than let the exception end the thread (and the process).
      core_.abort_all(FinishReason::error, std::string("engine failure: ") + e.what());
    }
    EngineStats snapshot = core_.stats();

    lock.lock();
    stats_ = snapshot;
  }
  lock.unlock();
  // Requests still in the inbox or the core are finished by stop() after the join.
}

}  // namespace talkserve::llm
