#pragma once
// POST /v1/audio/speech (OpenAI-compatible): JSON in; audio out, streamed with chunked transfer
// encoding as each sentence is synthesised (or, with "stream_format": "sse", as
// speech.audio.delta events). The first sentence is queued before the response head is sent,
// so a full queue is still a clean 503.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>

#include "talkserve/net/exchange.hpp"
#include "talkserve/speech/tts_stage.hpp"

namespace talkserve::speech::api {

struct SpeechLimits {
  std::size_t max_input_chars = 4096;
  int output_sample_rate = 24000;
  std::string default_voice = "alloy";
};

class SpeechHandler {
 public:
  // `media_pool` resamples and encodes (never the I/O threads). Both must outlive this.
  SpeechHandler(TtsStage& stage, boost::asio::thread_pool& media_pool, SpeechLimits limits)
      : stage_(stage), media_pool_(media_pool), limits_(std::move(limits)) {}

  boost::asio::awaitable<void> handle(net::HttpExchange& ex);

 private:
  TtsStage& stage_;
  boost::asio::thread_pool& media_pool_;
  SpeechLimits limits_;
};

}  // namespace talkserve::speech::api
