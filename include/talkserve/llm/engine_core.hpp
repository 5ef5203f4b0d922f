#pragma once
// The single-threaded heart of the LLM engine: requests in, one step() at a time, events out.
// Engine (engine.hpp) runs it on its own thread; tests drive it directly, step by step, with a
// fake ModelRunner and a ManualClock, which makes every scheduling decision observable.
//
// step(): apply pending cancellations and passed deadlines (freeing their blocks), schedule
// (ContinuousBatchScheduler), run ModelRunner::step on the batch, sample one token for every
// sequence whose logits came back, detokenize, match stop tokens / stop strings / max_tokens /
// context length, and emit events through each request's callback.
//
// Thread-safety: none. Every method must be called from one thread (the engine thread).

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "talkserve/llm/detokenizer.hpp"
#include "talkserve/llm/engine_stats.hpp"
#include "talkserve/llm/generation.hpp"
#include "talkserve/llm/kv_block_manager.hpp"
#include "talkserve/llm/model_runner.hpp"
#include "talkserve/llm/scheduler.hpp"
#include "talkserve/llm/stop_string_matcher.hpp"
#include "talkserve/sched/clock.hpp"

namespace talkserve::llm {

struct EngineConfig {
  SchedulerConfig scheduler;
  bool enable_prefix_caching = true;
  // Seeds the generator that draws a seed for each request that brings none.
  std::uint64_t seed = 0x5eed;

  std::string validate() const;  // empty when valid, else a message naming the key
};

// Checks a request against the model before it is queued. Empty when acceptable.
std::string validate_request(const GenerationRequest& request, const ModelInfo& info,
                             int block_size, int num_blocks, bool has_detokenizer);

class EngineCore {
 public:
  // `runner` (and `observer`, if any) must outlive the core.
  EngineCore(ModelRunner& runner, EngineConfig config, sched::Clock& clock,
             DetokenizerFactory detokenizer = {}, EngineObserver* observer = nullptr);
  ~EngineCore();

  // Queues a request. Returns an error message (and queues nothing, emits nothing) if it is
  // invalid. `arrival` is when the caller received it (default: now).
  std::string add_request(RequestId id, GenerationRequest request,
                          std::optional<sched::Clock::time_point> arrival = std::nullopt);
  // Takes effect at the next step(): the request finishes "cancelled" and its blocks are freed.
  void cancel(RequestId id, std::string why = "cancelled by client");
  // Finishes every request with `reason` and `why` (shutdown: cancelled; an unexpected engine
  // failure: error). Emits events.
  void abort_all(FinishReason reason, const std::string& why);

  bool has_work() const { return scheduler_.has_work() || !pending_cancels_.empty(); }
  void step();

  EngineStats stats() const;
  const ModelInfo& model_info() const { return info_; }
  ContinuousBatchScheduler& scheduler() { return scheduler_; }
  KvBlockManager& blocks() { return blocks_; }

 private:
  struct Request;
  void apply_cancellations();
  void process_sample(Request& req, Sequence& seq, std::span<const float> logits);
  void finish(RequestId id, FinishReason reason, std::string message,
              std::optional<int32_t> stop_token = std::nullopt, std::string stop_string = {});
  void emit(Request& req, GenerationEvent&& ev);
  double seconds_since(sched::Clock::time_point t) const;

  ModelRunner& runner_;
  ModelInfo info_;
  EngineConfig config_;
  sched::Clock& clock_;
  DetokenizerFactory detokenizer_;
  EngineObserver* observer_;
  KvBlockManager blocks_;
  ContinuousBatchScheduler scheduler_;
  std::unordered_map<RequestId, std::unique_ptr<Request>> requests_;
  std::vector<std::pair<RequestId, std::string>> pending_cancels_;
  std::uint64_t next_arrival_ = 0;
  std::uint64_t seed_state_;
  EngineStats totals_;  // cumulative counters; gauges filled in by stats()
};

}  // namespace talkserve::llm
