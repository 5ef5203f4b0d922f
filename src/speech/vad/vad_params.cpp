#include <stdexcept>
#include <string>

#include "talkserve/speech/vad.hpp"

namespace talkserve::speech {
namespace {

constexpr int kMaxMs = 60 * 60 * 1000;  // an hour: anything longer is a unit mistake

void check_ms(const char* field, int value) {
  if (value < 0 || value > kMaxMs) {
    throw std::invalid_argument(std::string("vad.") + field + " must be in [0, " +
                                std::to_string(kMaxMs) + "] ms, got " + std::to_string(value));
  }
}

}  // namespace

void VadParams::validate() const {
  // Written so that NaN fails too.
  if (!(threshold > 0.0f && threshold <= 1.0f)) {
    throw std::invalid_argument("vad.threshold must be in (0, 1], got " + std::to_string(threshold));
  }
  if (!(neg_threshold >= 0.0f && neg_threshold <= threshold)) {
    throw std::invalid_argument("vad.neg_threshold must be in [0, threshold = " +
                                std::to_string(threshold) + "], got " + std::to_string(neg_threshold));
  }
  check_ms("min_speech_ms", min_speech_ms);
  check_ms("min_silence_ms", min_silence_ms);
  check_ms("speech_pad_ms", speech_pad_ms);
}

}  // namespace talkserve::speech
