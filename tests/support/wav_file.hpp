#pragma once
// A minimal PCM16 WAV reader for tests that must not depend on the media module.

#include <string>
#include <vector>

namespace talkserve::test {

struct WavFile {
  int sample_rate = 0;
  int channels = 0;
  std::vector<float> samples;  // first channel, scaled by 1/32768
};

// Throws std::runtime_error unless `path` is a PCM 16-bit WAV file.
WavFile read_wav_pcm16(const std::string& path);

}  // namespace talkserve::test
