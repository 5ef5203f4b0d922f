// Names and MIME types of the encoder output formats (the OpenAI response_format values).

#include "talkserve/media/audio.hpp"

namespace talkserve::media {

std::optional<AudioFormat> parse_audio_format(std::string_view name) {
  if (name == "wav") return AudioFormat::wav;
  if (name == "mp3") return AudioFormat::mp3;
  if (name == "opus") return AudioFormat::opus;
  if (name == "aac") return AudioFormat::aac;
  if (name == "flac") return AudioFormat::flac;
  if (name == "pcm") return AudioFormat::pcm;
  return std::nullopt;
}

std::string_view to_string(AudioFormat format) noexcept {
  switch (format) {
    case AudioFormat::wav:
      return "wav";
    case AudioFormat::mp3:
      return "mp3";
    case AudioFormat::opus:
      return "opus";
    case AudioFormat::aac:
      return "aac";
    case AudioFormat::flac:
      return "flac";
    case AudioFormat::pcm:
      return "pcm";
  }
  return "unknown";
}

std::string_view content_type(AudioFormat format) noexcept {
  switch (format) {
    case AudioFormat::wav:
      return "audio/wav";
    case AudioFormat::mp3:
      return "audio/mpeg";
    case AudioFormat::opus:
      return "audio/ogg";
    case AudioFormat::aac:
      return "audio/aac";
    case AudioFormat::flac:
      return "audio/flac";
    case AudioFormat::pcm:
      return "audio/pcm";
  }
  return "application/octet-stream";
}

}  // namespace talkserve::media
