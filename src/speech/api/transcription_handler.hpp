#pragma once
// POST /v1/audio/transcriptions (OpenAI-compatible): multipart upload -> FFmpeg decode ->
// VAD segments -> ASR executor -> json | text | verbose_json | srt | vtt.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <functional>

#include "talkserve/net/exchange.hpp"
#include "talkserve/obs/metrics.hpp"
#include "talkserve/sched/queue_delay_probe.hpp"
#include "talkserve/speech/asr_stage.hpp"

namespace talkserve::speech::api {

struct TranscriptionLimits {
  double max_audio_seconds = 600;
  // > 0: an upload arriving while work queued on the media pool (decoding, the VAD) has waited
  // this long is refused with 503 overloaded, like a backlog in the recogniser's queue
  // (asr.max_queue_delay_ms covers both).
  std::chrono::milliseconds max_queue_delay{0};
};

class TranscriptionHandler {
 public:
  // `media_pool` runs decoding and the VAD (never the I/O threads). Both must outlive this.
  // `metrics` (optional) gets talkserve_queue_rejected_total{executor="media"}.
  TranscriptionHandler(AsrStage& stage, boost::asio::thread_pool& media_pool,
                       TranscriptionLimits limits, obs::MetricsRegistry* metrics = nullptr);

  boost::asio::awaitable<void> handle(net::HttpExchange& ex);

 private:
  AsrStage& stage_;
  boost::asio::thread_pool& media_pool_;
  TranscriptionLimits limits_;
  sched::QueueDelayProbe media_delay_;
  obs::Counter* media_shed_ = nullptr;
};

}  // namespace talkserve::speech::api
