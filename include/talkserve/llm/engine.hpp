#pragma once
// The LLM engine: one thread that owns the model runner and runs continuous-batching steps
// (EngineCore) for as long as there is work, and sleeps on a condition variable otherwise.
//
//   Engine engine(runner, config, sched::steady_clock(), make_detokenizer_factory(tok));
//   engine.start();
//   auto r = engine.submit({prompt_ids, params, /*priority*/ 1, deadline, on_event});
//   if (!r) reply_400(r.error);        // rejected synchronously, no event will come
//   engine.cancel(r.id);               // client went away: blocks freed at the next step
//
// Events arrive on the engine thread through the request's callback: TokenEvents, then exactly
// one FinishedEvent ("stop" | "length" | "cancelled" | "error"). The callback must be cheap.

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "talkserve/llm/engine_core.hpp"

namespace talkserve::llm {

struct SubmitResult {
  RequestId id = 0;   // valid when error is empty
  std::string error;  // why the request was rejected (bad input: HTTP 400)
  explicit operator bool() const { return error.empty(); }
};

class Engine {
 public:
  // `runner`, `clock` and `observer` must outlive the engine. The observer is called on the
  // engine thread.
  Engine(ModelRunner& runner, EngineConfig config, sched::Clock& clock,
         DetokenizerFactory detokenizer = {}, EngineObserver* observer = nullptr);
  ~Engine();  // stop()
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Starts the engine thread. Thread-safe; idempotent.
  void start();
  // Validates and queues a request; returns its id, or an error and queues nothing.
  // Thread-safe: any thread.
  SubmitResult submit(GenerationRequest request);
  // Cancels a request; it finishes "cancelled" at the engine's next step. Unknown or already
  // finished ids are ignored. Thread-safe: any thread.
  void cancel(RequestId id);
  // Stops the thread; requests still in flight finish "cancelled" ("engine stopped"), later
  // submits are rejected. Thread-safe, idempotent; must not be called from an event callback.
  void stop();

  // The snapshot taken after the last step. Thread-safe: any thread.
  EngineStats stats() const;
  // How long the oldest request at `priority` or above (lower value) has waited for its first
  // step, as of the last step; zero when none waits. Thread-safe: any thread.
  sched::Clock::duration queue_delay(int priority) const;
  const ModelInfo& model_info() const { return info_; }  // immutable; any thread
  int block_size() const { return block_size_; }
  int num_blocks() const { return num_blocks_; }

 private:
  void run();

  ModelInfo info_;
  int block_size_;
  int num_blocks_;
  bool has_detokenizer_;
  sched::Clock& clock_;
  EngineCore core_;  // engine thread only

  std::mutex stop_mutex_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  struct Incoming {
    RequestId id;
    GenerationRequest request;
    sched::Clock::time_point arrival;
  };
  std::deque<Incoming> inbox_;
  std::vector<RequestId> cancels_;
  RequestId next_id_ = 1;
  bool started_ = false;
  bool stopping_ = false;
  EngineStats stats_;
  std::thread thread_;
};

}  // namespace talkserve::llm
