#pragma once
// The espeak-ng backend (22050 Hz, 100+ languages, robotic but tiny and fast).
//
// espeak-ng keeps its state in globals and cannot be re-initialised reliably (1.51 hangs in a
// second espeak_Terminate), so the backend exists at most once per process: create() throws
// TtsError on a second call, even after the first instance was destroyed. thread_safe() is
// false: the server drives it from a single executor thread. synthesize() still serialises on
// an internal mutex, so a stray concurrent call is slow rather than undefined.

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "talkserve/speech/tts.hpp"

namespace talkserve::speech {

struct EspeakConfig {
  // The directory that contains espeak-ng-data; "" = the library's built-in default.
  std::string data_path;
  // The voice used when a request names none; a client voice name (see voices()).
  std::string default_voice = "en-us";

  // Throws TtsError naming the key (data_path must exist if set).
  void validate() const;
};

class EspeakBackend final : public TtsBackend {
 public:
  static constexpr int kSampleRate = 22050;
  static constexpr int kNormalWordsPerMinute = 175;

  // Initialises espeak-ng. Throws TtsError if it fails, if the default voice is unknown, or
  // if an espeak backend was already created in this process.
  static std::unique_ptr<EspeakBackend> create(const EspeakConfig& config = {});
  ~EspeakBackend() override;
  EspeakBackend(const EspeakBackend&) = delete;
  EspeakBackend& operator=(const EspeakBackend&) = delete;

  std::string name() const override { return "espeak-ng"; }
  // Every language espeak-ng lists ("en", "en-us", "en-gb", "cmn", "de", "fr", ...) and the
  // OpenAI voice names (alloy, echo, fable, onyx, nova, shimmer, ash, ballad, coral, sage,
  // verse) mapped onto English voices and variants. Sorted by name. Any thread.
  std::vector<VoiceInfo> voices() const override;
  int sample_rate() const override { return kSampleRate; }
  bool thread_safe() const override { return false; }
  TtsResult synthesize(const TtsRequest& request) override;

  // What espeak_SetVoiceByName receives for a client voice name (case-insensitive), e.g.
  // "alloy" -> "gmw/en-US+f2", "cmn" -> "sit/cmn-Latn-pinyin"; nullopt if unknown. Any thread.
  std::optional<std::string> espeak_voice_for(std::string_view client_name) const;

 private:
  struct VoiceEntry {
    std::string espeak_name;  // identifier[+variant] for espeak_SetVoiceByName
    std::string language;
  };
  EspeakBackend(std::map<std::string, VoiceEntry> voices, std::string default_voice);

  const std::map<std::string, VoiceEntry> voices_;  // by lower-case client name
  const std::string default_voice_;
  std::mutex synth_mutex_;
  std::string loaded_voice_;  // guarded by synth_mutex_
};

}  // namespace talkserve::speech
