#pragma once
// Audio in and out through FFmpeg (libavformat, libavcodec, libswresample).
//   decode_audio(): any container/codec FFmpeg reads (WAV, MP3, Ogg/Opus, WebM/Opus, FLAC,
//                   M4A/AAC, ...) from memory to mono float at the requested rate.
//   AudioEncoder:   mono float PCM to WAV, MP3, Opus (Ogg), AAC (ADTS) or FLAC, incrementally,
//                   so a synthesised reply can be streamed as it is produced.
//
// Thread-safety: decode_audio() and encode_audio() are reentrant; an AudioEncoder is used by
// one thread at a time.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace talkserve::media {

// Why media could not be read or written. The HTTP edge maps kind to a status:
// empty / corrupt -> 400, unsupported -> 415, too_long -> 413, internal -> 500.
class MediaError : public std::runtime_error {
 public:
  enum class Kind { empty, unsupported, corrupt, too_long, internal };
  MediaError(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  Kind kind() const noexcept { return kind_; }

 private:
  Kind kind_;
};

struct DecodeOptions {
  int sample_rate = 16000;   // output rate
  double max_seconds = 0;    // > 0: longer input is MediaError::too_long (checked while decoding)
};

struct DecodedAudio {
  std::vector<float> samples;   // mono, [-1, 1], at sample_rate
  int sample_rate = 0;
  std::string container;        // FFmpeg's short name: "wav", "mp3", "ogg", "matroska,webm", ...
  std::string codec;            // "pcm_s16le", "opus", "aac", ...
  int source_sample_rate = 0;
  int source_channels = 0;
  double duration_seconds() const {
    return sample_rate > 0 ? static_cast<double>(samples.size()) / sample_rate : 0.0;
  }
};

// Decodes the first audio stream of `bytes`; channels are averaged to mono.
// Throws MediaError: empty input, unknown/unsupported format or no audio stream (unsupported),
// truncated or garbage data that yields no audio (corrupt), over max_seconds (too_long).
DecodedAudio decode_audio(std::span<const std::uint8_t> bytes, const DecodeOptions& options = {});

enum class AudioFormat { wav, mp3, opus, aac, flac, pcm };

// "wav", "mp3", "opus", "aac", "flac", "pcm" (the OpenAI response_format values).
std::optional<AudioFormat> parse_audio_format(std::string_view name);
std::string_view to_string(AudioFormat format) noexcept;
// MIME type for HTTP: audio/wav, audio/mpeg, audio/ogg, audio/aac, audio/flac, audio/pcm.
std::string_view content_type(AudioFormat format) noexcept;

// Incremental encoder. push() returns the encoded bytes that are ready (possibly none);
// finish() flushes the encoder and returns the rest (trailer included). Concatenating all
// returned pieces gives one valid file/stream. WAV is written with a streaming header (sizes
// 0xFFFFFFFF, as players accept for live WAV) unless the whole input is given to encode_audio().
// pcm is raw signed 16-bit little-endian at the input rate. Opus is resampled to 48 kHz, the
// others keep the input rate when the codec supports it (else the nearest supported rate).
class AudioEncoder {
 public:
  // Throws MediaError(internal) if the codec is not available in this FFmpeg build.
  AudioEncoder(AudioFormat format, int sample_rate);
  ~AudioEncoder();
  AudioEncoder(const AudioEncoder&) = delete;
  AudioEncoder& operator=(const AudioEncoder&) = delete;

  std::string push(std::span<const float> samples);
  std::string finish();
  AudioFormat format() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Whole-buffer convenience: a complete file (WAV with exact sizes).
std::string encode_audio(std::span<const float> samples, int sample_rate, AudioFormat format);

}  // namespace talkserve::media
