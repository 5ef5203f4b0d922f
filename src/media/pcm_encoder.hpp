#pragma once
// WAV and raw PCM output: mono signed 16-bit little-endian at the input rate, no FFmpeg needed.

#include <cstdint>
#include <string>

#include "media/encoder_backend.hpp"

namespace talkserve::media::detail {

class PcmEncoder final : public EncoderBackend {
 public:
  // with_wav_header: prefix a 44-byte RIFF/WAVE header. When streaming, its sizes are
  // 0xFFFFFFFF (length unknown, as live WAV streams are written); otherwise exact.
  PcmEncoder(int sample_rate, bool with_wav_header, bool streaming);

  std::string push(std::span<const float> samples) override;
  std::string finish() override;

 private:
  std::string header(std::uint32_t data_bytes) const;

  int sample_rate_;
  bool with_wav_header_;
  bool streaming_;
  bool header_sent_ = false;
  bool finished_ = false;
  std::string pending_;  // non-streaming: all PCM until finish()
};

}  // namespace talkserve::media::detail
