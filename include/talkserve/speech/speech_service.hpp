#pragma once
// The speech service the app wires in: the ASR stage (pocketsphinx or wav2vec2, Silero VAD in
// front) behind POST /v1/audio/transcriptions, and the TTS stage (espeak-ng or flite) behind
// POST /v1/audio/speech and GET /v1/audio/voices.

#include <memory>

#include "talkserve/app/config.hpp"
#include "talkserve/app/service.hpp"

namespace talkserve::obs {
class MetricsRegistry;
}

namespace talkserve::speech {

std::unique_ptr<app::Service> make_speech_service(const app::AppConfig& config,
                                                  obs::MetricsRegistry& metrics);

class AsrStage;
class TtsStage;

// The stages of a speech service, for in-process users (the talk pipeline). Null until the
// service has started (and for a stage that is disabled).
class SpeechStages {
 public:
  virtual ~SpeechStages() = default;
  virtual AsrStage* asr_stage() = 0;
  virtual TtsStage* tts_stage() = 0;
};
// The stages of a service made by make_speech_service (nullptr for other services).
SpeechStages* speech_stages_of(app::Service& service);

}  // namespace talkserve::speech
