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

TEST_CASE("a WAV metadata chunk claiming more bytes than the upload holds is refused as corrupt",
          "[media][decode]") {
  // FFmpeg's wav demuxer allocates a LIST INFO entry at its declared size, bounded only by the
  // LIST chunk's own claim: a 7 KB upload whose LIST claimed 2.7 GB made one decode allocate
  // 2.1 GB (found by fuzz_audio_decoder). Here the entry claims 64 MiB.
  auto le32 = [](std::uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); };
  auto chunk = [&](const std::string& tag, std::uint32_t claimed, const std::string& body) {
    return tag + le32(claimed) + body;
  };
  std::string fmt = le32(0x00010003);  // WAVE_FORMAT_IEEE_FLOAT, mono
  fmt += le32(16000) + le32(16000 * 4) + le32(0x00200004);  // rate, byte rate, align 4, 32 bits
  const std::vector<float> samples(1600, 0.25f);
  const std::string pcm(reinterpret_cast<const char*>(samples.data()), samples.size() * 4);
  const std::string info = "INFO" + chunk("ISFT", 64u << 20, "Lavf59.27.100");
  const std::string huge_list = chunk("LIST", 0xA6030000u, info);
  auto wave = [&](const std::string& chunks) {
    return "RIFF" + le32(static_cast<std::uint32_t>(4 + chunks.size())) + "WAVE" + chunks;
  };
  const std::string fmt_chunk = chunk("fmt ", 16, fmt);
  auto decode_error = [](const std::string& bytes) {
    try {
      const DecodedAudio audio = decode_audio(mt::as_bytes(bytes));
      FAIL("decode_audio returned " << audio.samples.size() << " samples instead of throwing");
    } catch (const MediaError& error) {
      return error;
    }
    throw std::logic_error("unreachable");
  };
  const std::string data_chunk = chunk("data", static_cast<std::uint32_t>(pcm.size()), pcm);

  SECTION("the LIST after the samples") {
    const MediaError e = decode_error(wave(fmt_chunk + data_chunk + huge_list));
    CHECK(e.kind() == MediaError::Kind::corrupt);
    CHECK_THAT(e.what(), Catch::Contains("'LIST' chunk claims 2785214464 bytes"));
  }
  SECTION("the LIST between the format and the samples (the fuzzer's layout)") {
    const MediaError e = decode_error(wave(fmt_chunk + huge_list + data_chunk));
    CHECK(e.kind() == MediaError::Kind::corrupt);
    CHECK_THAT(e.what(), Catch::Contains("'LIST' chunk claims 2785214464 bytes"));
  }
  SECTION("a bext chunk claiming more than the upload") {
    const MediaError e = decode_error(wave(fmt_chunk + data_chunk + chunk("bext", 1u << 30, "")));
    CHECK(e.kind() == MediaError::Kind::corrupt);
    CHECK_THAT(e.what(), Catch::Contains("'bext' chunk claims"));
  }
  SECTION("a LIST that fits still decodes") {
    const std::string fitting = "INFO" + chunk("ISFT", 14, std::string("Lavf59.27.100\0", 14));
    const std::string list = chunk("LIST", static_cast<std::uint32_t>(fitting.size()), fitting);
    CHECK(decode_audio(mt::as_bytes(wave(fmt_chunk + list + data_chunk))).samples.size() == 1600);
  }
  SECTION("a LIST cut short by the end of a cut-off upload is left to the demuxer") {
    const std::string cut_list = chunk("LIST", 200, "INFO" + chunk("ISFT", 192, "Lavf"));
    CHECK(decode_audio(mt::as_bytes(wave(fmt_chunk + data_chunk + cut_list))).samples.size() ==
          1600);
  }
  SECTION("sample data cut short by the end of the upload still decodes") {
    const std::string cut = chunk("data", 100u << 20, pcm);
    CHECK(decode_audio(mt::as_bytes(wave(fmt_chunk + cut))).samples.size() == 1600);
  }
}
