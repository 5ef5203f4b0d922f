#include "media/pcm_encoder.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace talkserve::media::detail {

namespace {

void put_u16(std::string& out, std::uint16_t value) {
  out.push_back(static_cast<char>(value & 0xFF));
  out.push_back(static_cast<char>(value >> 8));
}

void put_u32(std::string& out, std::uint32_t value) {
  for (int shift = 0; shift < 32; shift += 8)
    out.push_back(static_cast<char>((value >> shift) & 0xFF));
}

void append_s16le(std::string& out, std::span<const float> samples) {
  out.reserve(out.size() + samples.size() * 2);
  for (float sample : samples) {
    // NaN becomes silence; everything else is clipped to full scale.
    const float clipped = std::isnan(sample) ? 0.0f : std::clamp(sample, -1.0f, 1.0f);
    put_u16(out,
            static_cast<std::uint16_t>(static_cast<std::int16_t>(std::lrint(clipped * 32767.0f))));
  }
}

constexpr std::uint32_t kUnknownSize = 0xFFFFFFFF;
constexpr std::uint32_t kHeaderBytes = 44;

}  // namespace

PcmEncoder::PcmEncoder(int sample_rate, bool with_wav_header, bool streaming)
    : sample_rate_(sample_rate), with_wav_header_(with_wav_header), streaming_(streaming) {}

std::string PcmEncoder::header(std::uint32_t data_bytes) const {
  std::string out;
  out.reserve(kHeaderBytes);
  out += "RIFF";
  put_u32(out, data_bytes == kUnknownSize ? kUnknownSize : data_bytes + kHeaderBytes - 8);
  out += "WAVEfmt ";
  put_u32(out, 16);                                            // fmt chunk size
  put_u16(out, 1);                                             // PCM
  put_u16(out, 1);                                             // channels
  put_u32(out, static_cast<std::uint32_t>(sample_rate_));      // sample rate
  put_u32(out, static_cast<std::uint32_t>(sample_rate_) * 2);  // byte rate
  put_u16(out, 2);                                             // block align
  put_u16(out, 16);                                            // bits per sample
  out += "data";
  put_u32(out, data_bytes);
  return out;
}

std::string PcmEncoder::push(std::span<const float> samples) {
  if (finished_) throw MediaError(MediaError::Kind::internal, "AudioEncoder::push after finish");
  if (!streaming_) {
    append_s16le(pending_, samples);
    return {};
  }
  std::string out;
  if (with_wav_header_ && !header_sent_) {
    out = header(kUnknownSize);
    header_sent_ = true;
  }
  append_s16le(out, samples);
  return out;
}

std::string PcmEncoder::finish() {
  if (finished_) return {};
  finished_ = true;
  if (streaming_) {
    // An empty stream still has to be a valid (empty) WAV file.
    if (with_wav_header_ && !header_sent_) return header(kUnknownSize);
    return {};
  }
  if (!with_wav_header_) return std::move(pending_);
  if (pending_.size() > std::numeric_limits<std::uint32_t>::max() - kHeaderBytes) {
    throw MediaError(MediaError::Kind::too_long, "audio too long for a WAV file (4 GiB limit)");
  }
  std::string out = header(static_cast<std::uint32_t>(pending_.size()));
  out += pending_;
  pending_.clear();
  return out;
}

}  // namespace talkserve::media::detail
