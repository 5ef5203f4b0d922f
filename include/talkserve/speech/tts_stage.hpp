#pragma once
// The TTS stage: one resident backend behind a BatchingExecutor. Work is queued one sentence
// at a time, so concurrent replies interleave sentence by sentence (every reply's first audio
// comes early) and a cancelled reply stops at the next sentence. espeak-ng keeps global state,
// so a backend that is not thread_safe() gets exactly one worker.
//
// Thread-safety: every method may be called from any thread; callbacks run on a worker (or on
// the thread calling cancel()/stop()) and must be short.

#include <functional>
#include <memory>

#include "talkserve/sched/batching_config.hpp"
#include "talkserve/sched/batching_executor.hpp"
#include "talkserve/sched/clock.hpp"
#include "talkserve/sched/expected.hpp"
#include "talkserve/speech/tts.hpp"

namespace talkserve::obs {
class MetricsRegistry;
}

namespace talkserve::speech {

class TtsStage {
 public:
  using Callback = std::function<void(sched::Expected<TtsResult>)>;

  // batching.num_workers is forced to 1 for a backend that is not thread_safe().
  TtsStage(std::unique_ptr<TtsBackend> backend, sched::BatchingConfig batching,
           sched::Clock& clock, obs::MetricsRegistry* metrics);
  ~TtsStage();
  TtsStage(const TtsStage&) = delete;
  TtsStage& operator=(const TtsStage&) = delete;

  TtsBackend& backend() const { return *backend_; }
  // Whether `voice` names one of the backend's voices ("" = its default: always true).
  bool has_voice(const std::string& voice) const;

  // Queues one synthesis. Returns its id, or queue_full / overloaded / stopped (then `done` is not called).
  sched::Expected<sched::RequestId> synthesize(TtsRequest request, int priority, Callback done);
  bool cancel(sched::RequestId id);

  void drain();
  void stop();
  std::size_t queue_depth() const;

 private:
  struct Impl;
  std::unique_ptr<TtsBackend> backend_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace talkserve::speech
