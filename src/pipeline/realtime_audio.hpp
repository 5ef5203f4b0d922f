#pragma once
// Audio of GET /v1/realtime (docs/realtime.md): the three wire formats (PCM16 at 24 kHz,
// G.711 u-law and A-law at 8 kHz), base64 as the events carry it, and the conversions between
// the wire and the pipeline (16 kHz float for the VAD and ASR, 24 kHz float out of the TTS).
//
// Thread-safety: the free functions are pure; each decoder/encoder belongs to one session and
// is used by one thread at a time.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace talkserve::media {
class AudioResampler;
}

namespace talkserve::pipeline {

enum class AudioFormat { pcm16, g711_ulaw, g711_alaw };

// 24000 for pcm16, 8000 for G.711.
int sample_rate_of(AudioFormat f);
// Beta names: "pcm16", "g711_ulaw", "g711_alaw".
std::string_view beta_format_name(AudioFormat f);
// GA names: "audio/pcm", "audio/pcmu", "audio/pcma".
std::string_view ga_format_name(AudioFormat f);
// Either spelling; nullopt for anything else.
std::optional<AudioFormat> parse_format_name(std::string_view name);

// G.711 (ITU-T), segment-wise: u-law on the top 14 bits of a sample, A-law on the top 13.
std::uint8_t ulaw_encode(std::int16_t sample);
std::int16_t ulaw_decode(std::uint8_t code);
std::uint8_t alaw_encode(std::int16_t sample);
std::int16_t alaw_decode(std::uint8_t code);

std::string base64_encode(std::string_view bytes);
// nullopt when `text` is not base64 (padding and line breaks are allowed).
std::optional<std::string> base64_decode(std::string_view text);

// Wire bytes in one format -> float samples at 16 kHz (the VAD and ASR rate), in pieces,
// with the resampler's state carried across pieces.
class InputAudioDecoder {
 public:
  explicit InputAudioDecoder(AudioFormat format);
  ~InputAudioDecoder();
  InputAudioDecoder(InputAudioDecoder&&) noexcept;
  InputAudioDecoder& operator=(InputAudioDecoder&&) noexcept;

  AudioFormat format() const { return format_; }
  // Throws std::invalid_argument for PCM16 of an odd number of bytes.
  std::vector<float> push(std::string_view bytes);
  // Wire samples (at the format's rate) that `bytes` hold.
  std::size_t wire_samples(std::size_t bytes) const;

 private:
  AudioFormat format_;
  std::unique_ptr<media::AudioResampler> resampler_;
};

// Float samples at 24 kHz (the TTS output rate of the pipeline) -> wire bytes in one format.
class OutputAudioEncoder {
 public:
  explicit OutputAudioEncoder(AudioFormat format);
  ~OutputAudioEncoder();
  OutputAudioEncoder(OutputAudioEncoder&&) noexcept;
  OutputAudioEncoder& operator=(OutputAudioEncoder&&) noexcept;

  AudioFormat format() const { return format_; }
  std::string push(std::span<const float> samples24k);
  std::string flush();  // the resampler's tail; call once at the end of a response

 private:
  std::string encode(std::span<const float> wire);
  AudioFormat format_;
  std::unique_ptr<media::AudioResampler> resampler_;  // null for pcm16 (24 kHz already)
};

// Milliseconds of audio `bytes` hold in `format`.
double wire_ms(AudioFormat format, std::size_t bytes);

}  // namespace talkserve::pipeline
