#pragma once
// The flite backend: four compiled-in US English voices (cmu_us_kal16 diphone, cmu_us_slt,
// cmu_us_rms, cmu_us_awb clustergen), all 16 kHz.
//
// Thread-safety: synthesize() may run on several threads at once (thread_safe() is true).
// flite's register_cmu_us_* functions return one process-wide voice object whose feature list
// synthesis reads and settings would write, so each thread registers its own private copy of
// every voice it uses (thread_local, created on first use under a mutex, deleted at thread
// exit); only the read-only voice databases and the lexicon are shared. Per-request settings
// (speed, pitch) are set on the utterance, never on the voice. Any number of FliteBackend
// instances may exist.

#include <memory>
#include <string>
#include <vector>

#include "talkserve/speech/tts.hpp"

namespace talkserve::speech {

struct FliteConfig {
  // The voice used when a request names none (see voices()).
  std::string default_voice = "cmu_us_slt";

  // Throws TtsError naming the key if default_voice is not one of the flite voices.
  void validate() const;
};

class FliteBackend final : public TtsBackend {
 public:
  // Every bundled voice synthesises at this rate; TtsResult::sample_rate carries the rate
  // of each result regardless, so a future voice with another rate stays correct.
  static constexpr int kSampleRate = 16000;

  // Calls flite_init() once per process. Throws TtsError on a bad config.
  static std::unique_ptr<FliteBackend> create(const FliteConfig& config = {});

  std::string name() const override { return "flite"; }
  std::vector<VoiceInfo> voices() const override;
  int sample_rate() const override { return kSampleRate; }
  bool thread_safe() const override { return true; }
  // speed scales flite's duration_stretch; pitch (0..100, 50 = voice default) scales the
  // voice's mean F0 by 2^((pitch - 50) / 100), i.e. from 0.71x to 1.41x.
  TtsResult synthesize(const TtsRequest& request) override;

 private:
  explicit FliteBackend(std::string default_voice);
  const std::string default_voice_;
};

}  // namespace talkserve::speech
