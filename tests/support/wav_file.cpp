#include "support/wav_file.hpp"

#include <cstdint>
#include <cstring>
#include <stdexcept>

#include "support/data_paths.hpp"

namespace talkserve::test {
namespace {

std::uint32_t le32(const std::string& b, std::size_t at) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b.at(at + i));
  return v;
}
std::uint16_t le16(const std::string& b, std::size_t at) {
  return static_cast<std::uint16_t>(static_cast<unsigned char>(b.at(at)) |
                                    (static_cast<unsigned char>(b.at(at + 1)) << 8));
}

}  // namespace

WavFile read_wav_pcm16(const std::string& path) {
  const std::string b = read_binary_file(path);
  if (b.size() < 12 || b.compare(0, 4, "RIFF") != 0 || b.compare(8, 4, "WAVE") != 0) {
    throw std::runtime_error("test: not a WAV file: " + path);
  }
  WavFile wav;
  std::size_t at = 12;
  bool have_fmt = false;
  while (at + 8 <= b.size()) {
    const std::string id = b.substr(at, 4);
    const std::uint32_t size = le32(b, at + 4);
    const std::size_t body = at + 8;
    if (id == "fmt ") {
      if (le16(b, body) != 1 || le16(b, body + 14) != 16) {
        throw std::runtime_error("test: not PCM16: " + path);
      }
      wav.channels = le16(b, body + 2);
      wav.sample_rate = static_cast<int>(le32(b, body + 4));
      have_fmt = true;
    } else if (id == "data" && have_fmt) {
      const std::size_t n = std::min<std::size_t>(size, b.size() - body) / 2;
      for (std::size_t i = 0; i < n; i += static_cast<std::size_t>(wav.channels)) {
        wav.samples.push_back(static_cast<std::int16_t>(le16(b, body + 2 * i)) / 32768.0f);
      }
      return wav;
    }
    at = body + size + (size & 1);
  }
  throw std::runtime_error("test: no data chunk in " + path);
}

}  // namespace talkserve::test
