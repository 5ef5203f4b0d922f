#pragma once
// A tiny PCM16 WAV reader for the speech tests (the media module is not a dependency here).

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/data_paths.hpp"

namespace talkserve::test {

struct Pcm16Wav {
  int sample_rate = 0;
  int channels = 0;
  std::vector<float> samples;  // first channel, int16 / 32768
};

inline Pcm16Wav read_pcm16_wav(const std::string& path) {
  const std::string bytes = read_binary_file(path);
  auto u32 = [&](std::size_t off) {
    std::uint32_t v = 0;
    for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(bytes[off + static_cast<std::size_t>(i)]);
    return v;
  };
  auto u16 = [&](std::size_t off) {
    return static_cast<std::uint16_t>(static_cast<unsigned char>(bytes[off]) |
                                      (static_cast<unsigned char>(bytes[off + 1]) << 8));
  };
  if (bytes.size() < 12 || bytes.compare(0, 4, "RIFF") != 0 || bytes.compare(8, 4, "WAVE") != 0) {
    throw std::runtime_error(path + ": not a RIFF/WAVE file");
  }
  Pcm16Wav wav;
  bool have_fmt = false;
  for (std::size_t off = 12; off + 8 <= bytes.size();) {
    const std::string id = bytes.substr(off, 4);
    const std::size_t size = u32(off + 4);
    const std::size_t body = off + 8;
    if (body + size > bytes.size() && id != "data") throw std::runtime_error(path + ": truncated chunk " + id);
    if (id == "fmt ") {
      if (u16(body) != 1 || u16(body + 14) != 16) throw std::runtime_error(path + ": not PCM16");
      wav.channels = u16(body + 2);
      wav.sample_rate = static_cast<int>(u32(body + 4));
      have_fmt = true;
    } else if (id == "data") {
      if (!have_fmt || wav.channels < 1) throw std::runtime_error(path + ": data before fmt");
      const std::size_t n = std::min(size, bytes.size() - body) / 2 / static_cast<std::size_t>(wav.channels);
      wav.samples.resize(n);
      for (std::size_t i = 0; i < n; ++i) {
        const auto s = static_cast<std::int16_t>(u16(body + 2 * i * static_cast<std::size_t>(wav.channels)));
        wav.samples[i] = static_cast<float>(s) / 32768.0f;
      }
      return wav;
    }
    off = body + size + (size & 1);
  }
  throw std::runtime_error(path + ": no data chunk");
}

inline std::vector<float> read_speech_clip(const std::string& name) {
  Pcm16Wav wav = read_pcm16_wav(speech_data_dir() + "/" + name);
  if (wav.sample_rate != 16000) throw std::runtime_error(name + ": not 16 kHz");
  return std::move(wav.samples);
}

}  // namespace talkserve::test
