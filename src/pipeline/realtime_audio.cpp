#include "realtime_audio.hpp"

#include <algorithm>
#include <boost/beast/core/detail/base64.hpp>
#include <cmath>
#include <stdexcept>

#include "talkserve/media/resampler.hpp"

namespace talkserve::pipeline {

namespace {

constexpr int kPipelineInRate = 16000;   // VAD and ASR
constexpr int kPipelineOutRate = 24000;  // TTS output after the live resampler

// Upper ends of the eight segments of each law, on the magnitudes the encoders work with.
constexpr std::int32_t kUlawSegmentEnd[8] = {0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF};
constexpr std::int32_t kAlawSegmentEnd[8] = {0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF};

int segment_of(std::int32_t magnitude, const std::int32_t (&ends)[8]) {
  for (int s = 0; s < 8; ++s) {
    if (magnitude <= ends[s]) return s;
  }
  return 8;
}

std::int16_t to_i16(float v) {
  return static_cast<std::int16_t>(std::lrint(std::clamp(v, -1.0f, 1.0f) * 32767.0f));
}

}  // namespace

int sample_rate_of(AudioFormat f) {
  return f == AudioFormat::pcm16 ? 24000 : 8000;
}

std::string_view beta_format_name(AudioFormat f) {
  switch (f) {
    case AudioFormat::pcm16:
      return "pcm16";
    case AudioFormat::g711_ulaw:
      return "g711_ulaw";
    case AudioFormat::g711_alaw:
      return "g711_alaw";
  }
  return "pcm16";
}

std::string_view ga_format_name(AudioFormat f) {
  switch (f) {
    case AudioFormat::pcm16:
      return "audio/pcm";
    case AudioFormat::g711_ulaw:
      return "audio/pcmu";
    case AudioFormat::g711_alaw:
      return "audio/pcma";
  }
  return "audio/pcm";
}

std::optional<AudioFormat> parse_format_name(std::string_view name) {
  if (name == "pcm16" || name == "audio/pcm") return AudioFormat::pcm16;
  if (name == "g711_ulaw" || name == "audio/pcmu") return AudioFormat::g711_ulaw;
  if (name == "g711_alaw" || name == "audio/pcma") return AudioFormat::g711_alaw;
  return std::nullopt;
}

// u-law: 14-bit magnitude plus a bias of 33, the segment is the position of the top bit, the
// four bits below it are the step; the code is sent inverted.
std::uint8_t ulaw_encode(std::int16_t sample) {
  std::int32_t v = sample >> 2;
  std::uint8_t mask = 0xFF;
  if (v < 0) {
    v = -v;
    mask = 0x7F;
  }
  v = std::min<std::int32_t>(v, 8159) + 0x21;
  const int seg = segment_of(v, kUlawSegmentEnd);
  if (seg >= 8) return static_cast<std::uint8_t>(0x7F ^ mask);
  const auto code = static_cast<std::uint8_t>((seg << 4) | ((v >> (seg + 1)) & 0x0F));
  return static_cast<std::uint8_t>(code ^ mask);
}

std::int16_t ulaw_decode(std::uint8_t code) {
  const std::uint8_t u = static_cast<std::uint8_t>(~code);
  std::int32_t t = ((u & 0x0F) << 3) + 0x84;
  t <<= (u & 0x70) >> 4;
  return static_cast<std::int16_t>((u & 0x80) ? (0x84 - t) : (t - 0x84));
}

// A-law: 13-bit magnitude (negative values are one's complement), linear in the first two
// segments; even bits are inverted on the wire (0x55).
std::uint8_t alaw_encode(std::int16_t sample) {
  std::int32_t v = sample >> 3;
  std::uint8_t mask = 0xD5;
  if (v < 0) {
    mask = 0x55;
    v = -v - 1;
  }
  const int seg = segment_of(v, kAlawSegmentEnd);
  if (seg >= 8) return static_cast<std::uint8_t>(0x7F ^ mask);
  std::uint8_t code = static_cast<std::uint8_t>(seg << 4);
  code |= static_cast<std::uint8_t>(((seg < 2) ? (v >> 1) : (v >> seg)) & 0x0F);
  return static_cast<std::uint8_t>(code ^ mask);
}

std::int16_t alaw_decode(std::uint8_t code) {
  const std::uint8_t a = code ^ 0x55;
  std::int32_t t = (a & 0x0F) << 4;
  const int seg = (a & 0x70) >> 4;
  if (seg == 0) {
    t += 8;
  } else {
    t += 0x108;
    t <<= seg - 1;
  }
  return static_cast<std::int16_t>((a & 0x80) ? t : -t);
}

std::string base64_encode(std::string_view bytes) {
  namespace b64 = boost::beast::detail::base64;
  std::string out(b64::encoded_size(bytes.size()), '\0');
  out.resize(b64::encode(out.data(), bytes.data(), bytes.size()));
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  // Standard alphabet; line breaks are skipped, padding is optional but only at the end.
  std::string out;
  out.reserve(text.size() / 4 * 3 + 3);
  std::uint32_t acc = 0;
  int bits = 0;
  std::size_t symbols = 0;
  std::size_t pad = 0;
  for (char c : text) {
    if (c == '\r' || c == '\n') continue;
    if (c == '=') {
      ++pad;
      continue;
    }
    if (pad > 0) return std::nullopt;  // data after padding
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '+')
      v = 62;
    else if (c == '/')
      v = 63;
    else
      return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    ++symbols;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if (symbols % 4 == 1 || pad > 2) return std::nullopt;
  if (pad > 0 && (symbols + pad) % 4 != 0) return std::nullopt;
  return out;
}

double wire_ms(AudioFormat format, std::size_t bytes) {
  const std::size_t samples = format == AudioFormat::pcm16 ? bytes / 2 : bytes;
  return samples * 1000.0 / sample_rate_of(format);
}

// ---- InputAudioDecoder ---------------------------------------------------------------------

InputAudioDecoder::InputAudioDecoder(AudioFormat format)
    : format_(format),
      resampler_(std::make_unique<media::AudioResampler>(sample_rate_of(format), kPipelineInRate)) {
}
InputAudioDecoder::~InputAudioDecoder() = default;
InputAudioDecoder::InputAudioDecoder(InputAudioDecoder&&) noexcept = default;
InputAudioDecoder& InputAudioDecoder::operator=(InputAudioDecoder&&) noexcept = default;

std::size_t InputAudioDecoder::wire_samples(std::size_t bytes) const {
  return format_ == AudioFormat::pcm16 ? bytes / 2 : bytes;
}

std::vector<float> InputAudioDecoder::push(std::string_view bytes) {
  std::vector<float> wire;
  if (format_ == AudioFormat::pcm16) {
    if (bytes.size() % 2 != 0)
      throw std::invalid_argument("pcm16 audio has an odd number of bytes");
    wire.resize(bytes.size() / 2);
    for (std::size_t i = 0; i < wire.size(); ++i) {
      const auto lo = static_cast<std::uint8_t>(bytes[2 * i]);
      const auto hi = static_cast<std::uint8_t>(bytes[2 * i + 1]);
      wire[i] = static_cast<std::int16_t>(lo | (hi << 8)) / 32768.0f;
    }
  } else {
    wire.resize(bytes.size());
    const bool ulaw = format_ == AudioFormat::g711_ulaw;
    for (std::size_t i = 0; i < wire.size(); ++i) {
      const auto code = static_cast<std::uint8_t>(bytes[i]);
      wire[i] = (ulaw ? ulaw_decode(code) : alaw_decode(code)) / 32768.0f;
    }
  }
  return resampler_->push(wire);
}

// ---- OutputAudioEncoder --------------------------------------------------------------------

OutputAudioEncoder::OutputAudioEncoder(AudioFormat format) : format_(format) {
  if (sample_rate_of(format) != kPipelineOutRate) {
    resampler_ = std::make_unique<media::AudioResampler>(kPipelineOutRate, sample_rate_of(format));
  }
}
OutputAudioEncoder::~OutputAudioEncoder() = default;
OutputAudioEncoder::OutputAudioEncoder(OutputAudioEncoder&&) noexcept = default;
OutputAudioEncoder& OutputAudioEncoder::operator=(OutputAudioEncoder&&) noexcept = default;

std::string OutputAudioEncoder::encode(std::span<const float> wire) {
  if (format_ == AudioFormat::pcm16) {
    std::string out(wire.size() * 2, '\0');
    for (std::size_t i = 0; i < wire.size(); ++i) {
      const std::int16_t v = to_i16(wire[i]);
      out[2 * i] = static_cast<char>(v & 0xff);
      out[2 * i + 1] = static_cast<char>((v >> 8) & 0xff);
    }
    return out;
  }
  std::string out(wire.size(), '\0');
  const bool ulaw = format_ == AudioFormat::g711_ulaw;
  for (std::size_t i = 0; i < wire.size(); ++i) {
    const std::int16_t v = to_i16(wire[i]);
    out[i] = static_cast<char>(ulaw ? ulaw_encode(v) : alaw_encode(v));
  }
  return out;
}

std::string OutputAudioEncoder::push(std::span<const float> samples24k) {
  if (!resampler_) return encode(samples24k);
  const std::vector<float> wire = resampler_->push(samples24k);
  return encode(wire);
}

std::string OutputAudioEncoder::flush() {
  if (!resampler_) return {};
  const std::vector<float> wire = resampler_->flush();
  return encode(wire);
}

}  // namespace talkserve::pipeline
