#pragma once
// What AudioEncoder delegates to: one implementation for the raw PCM family (WAV, pcm) and one
// for everything libavcodec/libavformat encode (MP3, Opus, AAC, FLAC).

#include <memory>
#include <span>
#include <string>

#include "talkserve/media/audio.hpp"

namespace talkserve::media::detail {

class EncoderBackend {
 public:
  virtual ~EncoderBackend() = default;
  virtual std::string push(std::span<const float> samples) = 0;
  virtual std::string finish() = 0;
};

// streaming = true:  push() hands out bytes as soon as they are encoded (AudioEncoder).
// streaming = false: everything comes out of finish(), and the output is a complete file with
//                    exact sizes in its headers (encode_audio()).
std::unique_ptr<EncoderBackend> make_encoder_backend(AudioFormat format, int sample_rate,
                                                     bool streaming);

}  // namespace talkserve::media::detail
