// AudioEncoder and encode_audio(): pick the backend for the format and forward to it.

#include <memory>

#include "media/encoder_backend.hpp"
#include "media/ffmpeg_encoder.hpp"
#include "media/ffmpeg_raii.hpp"
#include "media/pcm_encoder.hpp"
#include "talkserve/media/audio.hpp"

namespace talkserve::media {

namespace detail {

std::unique_ptr<EncoderBackend> make_encoder_backend(AudioFormat format, int sample_rate,
                                                     bool streaming) {
  if (sample_rate <= 0) {
    throw MediaError(MediaError::Kind::internal, "encoder sample_rate must be positive");
  }
  switch (format) {
    case AudioFormat::wav:
      return std::make_unique<PcmEncoder>(sample_rate, true, streaming);
    case AudioFormat::pcm:
      return std::make_unique<PcmEncoder>(sample_rate, false, streaming);
    case AudioFormat::mp3:
    case AudioFormat::opus:
    case AudioFormat::aac:
    case AudioFormat::flac:
      route_ffmpeg_logging_once();
      return std::make_unique<FfmpegEncoder>(format, sample_rate, streaming);
  }
  throw MediaError(MediaError::Kind::internal, "unknown audio format");
}

}  // namespace detail

struct AudioEncoder::Impl {
  AudioFormat format;
  std::unique_ptr<detail::EncoderBackend> backend;
};

AudioEncoder::AudioEncoder(AudioFormat format, int sample_rate)
    : impl_(std::make_unique<Impl>(
          Impl{format, detail::make_encoder_backend(format, sample_rate, /*streaming=*/true)})) {}

AudioEncoder::~AudioEncoder() = default;

std::string AudioEncoder::push(std::span<const float> samples) {
  return impl_->backend->push(samples);
}

std::string AudioEncoder::finish() {
  return impl_->backend->finish();
}

AudioFormat AudioEncoder::format() const noexcept {
  return impl_->format;
}

std::string encode_audio(std::span<const float> samples, int sample_rate, AudioFormat format) {
  auto backend = detail::make_encoder_backend(format, sample_rate, /*streaming=*/false);
  std::string out = backend->push(samples);
  out += backend->finish();
  return out;
}

}  // namespace talkserve::media
