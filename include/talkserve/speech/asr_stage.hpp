#pragma once
// The ASR stage: one resident backend behind a BatchingExecutor, with the VAD in front.
// A clip is cut into speech segments (silence dropped, long speech cut at max_segment), every
// segment is queued separately, so segments of one long upload and of many concurrent uploads
// are batched together; the clip's callback fires once all of its segments are recognised.
//
// Thread-safety: transcribe() and cancel may be called from any thread; callbacks run on an
// executor worker (or the caller's thread for immediate errors) and must be short.

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "talkserve/sched/batching_config.hpp"
#include "talkserve/sched/clock.hpp"
#include "talkserve/sched/expected.hpp"
#include "talkserve/speech/asr.hpp"
#include "talkserve/speech/vad.hpp"

namespace talkserve::obs {
class MetricsRegistry;
}

namespace talkserve::speech {

struct AsrStageConfig {
  sched::BatchingConfig batching;  // name "asr"
  VadParams vad;
  // Speech regions closer than this are recognised as one segment: the recogniser keeps its
  // language-model context and normalisation across short pauses (cutting at every pause of
  // min_silence_ms costs pocketsphinx several points of word error rate).
  double merge_gap_seconds = 2.0;
  double max_segment_seconds = 30;
};

struct TranscriptSegment {
  double start = 0;  // seconds from the start of the clip
  double end = 0;
  AsrResult result;  // word times already shifted to clip time
};

struct Transcript {
  std::string text;                        // segment texts joined by spaces
  std::vector<TranscriptSegment> segments;  // speech segments in order (empty segments dropped)
  double duration = 0;                     // seconds of audio received
};

// Cancels a clip's segments that are still queued (running ones finish; the callback then
// gets `cancelled`). Safe to call at any time, more than once.
class AsrTicket {
 public:
  virtual ~AsrTicket() = default;
  virtual void cancel() = 0;
};

class AsrStage {
 public:
  using Callback = std::function<void(sched::Expected<Transcript>)>;

  // `vad` may be null: then each clip is one segment (cut at max_segment_seconds).
  AsrStage(std::unique_ptr<AsrBackend> backend, std::shared_ptr<const VadModel> vad,
           AsrStageConfig config, sched::Clock& clock, obs::MetricsRegistry* metrics);
  ~AsrStage();
  AsrStage(const AsrStage&) = delete;
  AsrStage& operator=(const AsrStage&) = delete;

  const AsrBackend& backend() const { return *backend_; }
  // The VAD model (null when none was loaded) and its parameters, for live streams that run
  // their own VadStream in front of transcribe().
  const VadModel* vad_model() const;
  const VadParams& vad_params() const;

  // Speech segments of a clip as [begin, end) sample ranges; runs the VAD on this thread.
  std::vector<SpeechRegion> segment(const std::vector<float>& audio) const;

  // Queues the given segments of `audio` (from segment()). On success returns a ticket and
  // `done` is called exactly once later; on refusal (queue full, overloaded, stopping) returns the error
  // and `done` is never called.
  // `prompt`: text the speech follows, given to every segment (AsrInput::prompt).
  sched::Expected<std::shared_ptr<AsrTicket>> transcribe(
      std::shared_ptr<const std::vector<float>> audio, std::vector<SpeechRegion> segments,
      std::string language, int priority, Callback done, std::string prompt = {});

  void drain();  // stop taking work, finish what is queued
  void stop();   // fail what is queued

  std::size_t queue_depth() const;
  // True when work at `priority` would be refused as overloaded (asr.max_queue_delay_ms):
  // checked before decoding an upload, so shed requests cost no decoding or VAD. A true answer
  // is counted as a refusal (talkserve_queue_rejected_total{executor="asr",reason="overloaded"}),
  // so call it only where true means the work is refused.
  bool overloaded(int priority) const;

 private:
  struct Impl;
  std::unique_ptr<AsrBackend> backend_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace talkserve::speech
