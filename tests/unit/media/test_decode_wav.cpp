// decode_audio() on the shared speech WAVs (16 kHz, 8 kHz and 22.05 kHz), resampled to 16 kHz.

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <set>

#include "support/data_paths.hpp"
#include "talkserve/media/audio.hpp"
#include "unit/media/media_test_support.hpp"

using namespace talkserve::media;
namespace mt = talkserve::media::test;

TEST_CASE("every shared speech WAV decodes to 16 kHz mono with its header duration",
          "[media][decode]") {
  std::vector<std::filesystem::path> wavs;
  for (const auto& entry :
       std::filesystem::directory_iterator(talkserve::test::speech_data_dir())) {
    if (entry.path().extension() == ".wav") wavs.push_back(entry.path());
  }
  REQUIRE(wavs.size() >= 10);
  std::set<int> rates_seen;
  for (const auto& path : wavs) {
    INFO(path.filename().string());
    const std::string bytes = talkserve::test::read_binary_file(path.string());
    const mt::WavHeaderInfo header = mt::parse_wav_header(bytes);
    const DecodedAudio audio = decode_audio(mt::as_bytes(bytes));
    rates_seen.insert(header.sample_rate);

    CHECK(audio.sample_rate == 16000);
    CHECK(audio.source_sample_rate == header.sample_rate);
    CHECK(audio.source_channels == header.channels);
    CHECK(audio.container == "wav");
    CHECK(audio.codec == "pcm_s16le");
    CHECK(std::abs(audio.duration_seconds() - header.duration_seconds) < 0.010);
    float peak = 0;
    for (float s : audio.samples) peak = std::max(peak, std::abs(s));
    CHECK(peak > 0.01f);
    CHECK(peak <= 1.0f);
  }
  CHECK(rates_seen.count(8000) == 1);
  CHECK(rates_seen.count(16000) == 1);
  CHECK(rates_seen.count(22050) == 1);
}

TEST_CASE("a 16 kHz WAV decoded at 16 kHz is sample-exact", "[media][decode]") {
  const std::string bytes =
      talkserve::test::read_binary_file(talkserve::test::speech_data_dir() + "/jfk.wav");
  const DecodedAudio audio = decode_audio(mt::as_bytes(bytes));
  // The data chunk of jfk.wav starts right after the 78-byte header.
  const std::size_t data_at = bytes.find("data") + 8;
  const std::vector<float> raw = mt::pcm_s16le_to_float(bytes.substr(data_at));
  REQUIRE(audio.samples.size() == raw.size());
  float max_diff = 0;
  for (std::size_t i = 0; i < raw.size(); ++i)
    max_diff = std::max(max_diff, std::abs(raw[i] - audio.samples[i]));
  CHECK(max_diff < 1e-6f);
}

TEST_CASE("decoding at another output rate keeps the duration", "[media][decode]") {
  const std::string bytes =
      talkserve::test::read_binary_file(talkserve::test::speech_data_dir() + "/jfk.wav");
  DecodeOptions options;
  options.sample_rate = 48000;
  const DecodedAudio audio = decode_audio(mt::as_bytes(bytes), options);
  CHECK(audio.sample_rate == 48000);
  CHECK(std::abs(audio.duration_seconds() - 11.0) < 0.010);
}
