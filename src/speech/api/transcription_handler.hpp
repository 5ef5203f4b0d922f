#pragma once
// POST /v1/audio/transcriptions (OpenAI-compatible): multipart upload -> FFmpeg decode ->
// VAD segments -> ASR executor -> json | text | verbose_json | srt | vtt.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>

#include "talkserve/net/exchange.hpp"
#include "talkserve/speech/asr_stage.hpp"

namespace talkserve::speech::api {

struct TranscriptionLimits {
  double max_audio_seconds = 600;
};

class TranscriptionHandler {
 public:
  // `media_pool` runs decoding and the VAD (never the I/O threads). Both must outlive this.
  TranscriptionHandler(AsrStage& stage, boost::asio::thread_pool& media_pool,
                       TranscriptionLimits limits)
      : stage_(stage), media_pool_(media_pool), limits_(limits) {}

  boost::asio::awaitable<void> handle(net::HttpExchange& ex);

 private:
  AsrStage& stage_;
  boost::asio::thread_pool& media_pool_;
  TranscriptionLimits limits_;
};

}  // namespace talkserve::speech::api
