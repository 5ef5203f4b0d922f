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

TEST_CASE("float WAV samples that are not finite or past full scale decode into [-1, 1]",
          "[media][decode]") {
  // A 16 kHz mono IEEE-float WAV (format 3), written by hand: NaN, inf and 1e30 are legal
  // float samples, and the fuzzer (fuzz_audio_decoder) produced such files.
  std::vector<float> samples(1600, 0.25f);
  samples[10] = std::nanf("");
  samples[20] = INFINITY;
  samples[30] = -1e30f;
  samples[40] = 4.0f;
  const std::uint32_t data_bytes = static_cast<std::uint32_t>(samples.size() * 4);
  std::string wav = "RIFF";
  auto put32 = [&](std::uint32_t v) { wav.append(reinterpret_cast<const char*>(&v), 4); };
  auto put16 = [&](std::uint16_t v) { wav.append(reinterpret_cast<const char*>(&v), 2); };
  put32(36 + data_bytes);
  wav += "WAVEfmt ";
  put32(16);
  put16(3);           // WAVE_FORMAT_IEEE_FLOAT
  put16(1);           // mono
  put32(16000);       // sample rate
  put32(16000 * 4);   // byte rate
  put16(4);           // block align
  put16(32);          // bits per sample
  wav += "data";
  put32(data_bytes);
  wav.append(reinterpret_cast<const char*>(samples.data()), data_bytes);

  const DecodedAudio audio = decode_audio(mt::as_bytes(wav));
  CHECK(audio.codec == "pcm_f32le");
  REQUIRE(audio.samples.size() == samples.size());
  for (float s : audio.samples) {
    REQUIRE(std::isfinite(s));
    REQUIRE(std::abs(s) <= 1.0f);
  }
  CHECK(audio.samples[10] == 0.0f);
  CHECK(audio.samples[30] == -1.0f);
  CHECK(audio.samples[40] == 1.0f);
  CHECK(audio.samples[100] == Approx(0.25f));
}

TEST_CASE("a WAV header claiming an absurd sample rate is refused as corrupt", "[media][decode]") {
  // mu-law, mono, 721428288 Hz (a damaged header): building the resampler for it took over
  // 10 s and 2 GB (found by fuzz_audio_decoder).
  std::string wav = "RIFF";
  auto put32 = [&](std::uint32_t v) { wav.append(reinterpret_cast<const char*>(&v), 4); };
  auto put16 = [&](std::uint16_t v) { wav.append(reinterpret_cast<const char*>(&v), 2); };
  put32(36 + 800);
  wav += "WAVEfmt ";
  put32(16);
  put16(7);           // WAVE_FORMAT_MULAW
  put16(1);
  put32(721428288);
  put32(721428288);
  put16(1);
  put16(8);
  wav += "data";
  put32(800);
  wav.append(800, '\x55');
  try {
    decode_audio(mt::as_bytes(wav));
    FAIL("decoded");
  } catch (const MediaError& e) {
    CHECK(e.kind() == MediaError::Kind::corrupt);
    CHECK_THAT(e.what(), Catch::Contains("sample rate 721428288 Hz"));
  }
}
