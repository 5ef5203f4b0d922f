// AudioEncoder / encode_audio() for every AudioFormat: the output is checked by ffprobe (an
// independent reader) and decoded back with decode_audio() to compare with the input.

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>

#include "support/data_paths.hpp"
#include "support/temp_dir.hpp"
#include "talkserve/media/audio.hpp"
#include "unit/media/media_test_support.hpp"

using namespace talkserve::media;
namespace mt = talkserve::media::test;

namespace {

const std::vector<float>& jfk_16k() {
  static const std::vector<float> samples =
      decode_audio(mt::as_bytes(talkserve::test::read_binary_file(
                       talkserve::test::speech_data_dir() + "/jfk.wav")))
          .samples;
  return samples;
}

// Pushes `samples` in odd-sized pieces (1, 7, 333, ... samples) and concatenates the output.
struct StreamedOutput {
  std::string bytes;
  std::size_t bytes_before_finish = 0;
};
StreamedOutput encode_streaming(AudioFormat format, int rate, const std::vector<float>& samples) {
  static const std::size_t kPieces[] = {1, 7, 333, 1009, 4099, 2, 12345};
  AudioEncoder encoder(format, rate);
  REQUIRE(encoder.format() == format);
  StreamedOutput out;
  std::size_t at = 0;
  for (std::size_t i = 0; at < samples.size(); ++i) {
    const std::size_t count = std::min(kPieces[i % std::size(kPieces)], samples.size() - at);
    out.bytes += encoder.push(std::span<const float>(samples.data() + at, count));
    at += count;
  }
  out.bytes_before_finish = out.bytes.size();
  out.bytes += encoder.finish();
  CHECK(encoder.finish().empty());
  return out;
}

struct Expectation {
  AudioFormat format;
  const char* codec_name;   // ffprobe's codec_name
  const char* format_name;  // ffprobe's format_name
  int codec_rate;           // rate inside the file
  double streamed_delay;    // encoder delay + padding the decoder cannot remove (seconds)
  double whole_delay;       // the same for encode_audio()'s complete file
  bool lossless;
};

// ADTS cannot signal the AAC encoder delay (1024 samples) and padding. A streamed MP3 has no
// LAME/Xing header (it is written up front and patched at the end, which needs seeking), so
// only encode_audio()'s MP3 is gapless. Ogg/Opus carries its pre-skip either way.
const Expectation kExpectations[] = {
    {AudioFormat::wav, "pcm_s16le", "wav", 16000, 0.0, 0.0, true},
    {AudioFormat::pcm, "pcm_s16le", "s16le", 16000, 0.0, 0.0, true},
    {AudioFormat::mp3, "mp3", "mp3", 16000, 0.2, 0.0, false},
    {AudioFormat::opus, "opus", "ogg", 48000, 0.0, 0.0, false},
    {AudioFormat::aac, "aac", "aac", 16000, 0.2, 0.2, false},
    {AudioFormat::flac, "flac", "flac", 16000, 0.0, 0.0, true},
};

std::vector<float> decode_back(AudioFormat format, const std::string& bytes) {
  if (format == AudioFormat::pcm) return mt::pcm_s16le_to_float(bytes);
  const DecodedAudio audio = decode_audio(mt::as_bytes(bytes));
  CHECK(audio.sample_rate == 16000);
  return audio.samples;
}

void check_round_trip(const Expectation& expect, const std::string& bytes,
                      const talkserve::test::TempDir& dir, const std::string& label,
                      double extra_seconds) {
  INFO(label);
  const std::vector<float>& input = jfk_16k();
  const std::string path = dir.write(label + "." + std::string(to_string(expect.format)), bytes);

  const mt::ProbeResult probe =
      mt::ffprobe(path, expect.format == AudioFormat::pcm ? "-f s16le -ar 16000 -ac 1" : "");
  CHECK(probe.codec_name == expect.codec_name);
  CHECK(probe.format_name == expect.format_name);
  CHECK(probe.sample_rate == expect.codec_rate);
  CHECK(probe.channels == 1);
  // ffmpeg itself must read the whole stream without complaint.
  CHECK(
      mt::run_command("ffmpeg -nostdin -hide_banner -v error " +
                      (expect.format == AudioFormat::pcm ? std::string("-f s16le -ar 16000 -ac 1 ")
                                                         : std::string()) +
                      "-i " + mt::shell_quote(path) + " -f null -")
          .empty());

  const std::vector<float> output = decode_back(expect.format, bytes);
  const double input_seconds = static_cast<double>(input.size()) / 16000.0;
  const double output_seconds = static_cast<double>(output.size()) / 16000.0;
  CAPTURE(input_seconds, output_seconds);
  CHECK(output_seconds >= input_seconds - 0.005);
  CHECK(output_seconds <= input_seconds + extra_seconds + 0.005);

  if (expect.lossless) {
    // 16-bit quantisation is the only loss.
    REQUIRE(output.size() == input.size());
    float max_diff = 0;
    for (std::size_t i = 0; i < input.size(); ++i)
      max_diff = std::max(max_diff, std::abs(input[i] - output[i]));
    CHECK(max_diff < 2.0f / 32768);
  } else {
    // The output may start later by the delay the format cannot signal, never earlier.
    const auto max_lag_ms = static_cast<int>(extra_seconds * 1000) + 5;
    const mt::Similarity envelope = mt::envelope_similarity(input, output, 16000, max_lag_ms);
    const mt::Similarity wave = mt::waveform_similarity(input, output, 16000, max_lag_ms);
    CAPTURE(envelope.correlation, envelope.lag_ms, wave.correlation, wave.lag_ms);
    CHECK(envelope.correlation > 0.99);
    CHECK(wave.correlation > 0.95);
    CHECK(wave.lag_ms >= -1);
    CHECK(wave.lag_ms <= extra_seconds * 1000 + 1);
  }
}

}  // namespace

TEST_CASE("every format round-trips through the streaming encoder and encode_audio",
          "[media][encode]") {
  talkserve::test::TempDir dir;
  for (const Expectation& expect : kExpectations) {
    SECTION(std::string(to_string(expect.format))) {
      const StreamedOutput streamed = encode_streaming(expect.format, 16000, jfk_16k());
      // Output flows before finish(): it is a stream, not a buffered file.
      CHECK(streamed.bytes_before_finish > streamed.bytes.size() / 2);
      check_round_trip(expect, streamed.bytes, dir, "streamed", expect.streamed_delay);

      const std::string whole = encode_audio(jfk_16k(), 16000, expect.format);
      check_round_trip(expect, whole, dir, "whole", expect.whole_delay);
    }
  }
}

TEST_CASE("WAV headers: streaming sizes are 0xFFFFFFFF, encode_audio sizes are exact",
          "[media][encode]") {
  const std::vector<float> samples(1000, 0.25f);
  AudioEncoder encoder(AudioFormat::wav, 16000);
  std::string streamed = encoder.push(samples);
  streamed += encoder.finish();
  REQUIRE(streamed.size() == 44 + 2000);
  CHECK(streamed.compare(4, 4, "\xff\xff\xff\xff") == 0);
  CHECK(streamed.compare(40, 4, "\xff\xff\xff\xff") == 0);

  const std::string whole = encode_audio(samples, 16000, AudioFormat::wav);
  REQUIRE(whole.size() == 44 + 2000);
  std::uint32_t riff_size = 0, data_size = 0;
  std::memcpy(&riff_size, whole.data() + 4, 4);
  std::memcpy(&data_size, whole.data() + 40, 4);
  CHECK(riff_size == 36 + 2000);
  CHECK(data_size == 2000);
  CHECK(mt::parse_wav_header(whole).duration_seconds == Approx(1000 / 16000.0));
}

TEST_CASE("PCM output clips out-of-range samples and maps NaN to silence", "[media][encode]") {
  const std::vector<float> samples = {0.0f, 1.5f, -1.5f, 1.0f, -1.0f, std::nanf("")};
  const std::string bytes = encode_audio(samples, 8000, AudioFormat::pcm);
  REQUIRE(bytes.size() == 12);
  std::int16_t values[6];
  std::memcpy(values, bytes.data(), 12);
  CHECK(values[0] == 0);
  CHECK(values[1] == 32767);
  CHECK(values[2] == -32767);
  CHECK(values[3] == 32767);
  CHECK(values[4] == -32767);
  CHECK(values[5] == 0);
}

TEST_CASE("encoders resample to a rate the codec supports", "[media][encode]") {
  talkserve::test::TempDir dir;
  // 11000 Hz is not an MP3 rate (nearest: 11025); Opus always runs at 48 kHz.
  struct Case {
    AudioFormat format;
    int rate;
    int expected_rate;
  };
  for (const Case& c :
       {Case{AudioFormat::mp3, 11000, 11025}, Case{AudioFormat::opus, 22050, 48000},
        Case{AudioFormat::aac, 22050, 22050}, Case{AudioFormat::flac, 22050, 22050}}) {
    INFO(to_string(c.format) << " at " << c.rate);
    std::vector<float> tone(static_cast<std::size_t>(c.rate) * 2);
    for (std::size_t i = 0; i < tone.size(); ++i)
      tone[i] =
          static_cast<float>(0.5 * std::sin(2 * M_PI * 440.0 * static_cast<double>(i) / c.rate));
    const std::string bytes = encode_audio(tone, c.rate, c.format);
    const mt::ProbeResult probe = mt::ffprobe(dir.write("tone", bytes));
    CHECK(probe.sample_rate == c.expected_rate);
    DecodeOptions options;
    options.sample_rate = c.rate;
    const DecodedAudio audio = decode_audio(mt::as_bytes(bytes), options);
    CHECK(audio.source_sample_rate == c.expected_rate);
    CHECK(audio.duration_seconds() == Approx(2.0).margin(0.15));
    // A 440 Hz tone at amplitude 0.5 has RMS 0.354 (measured on the middle half).
    const std::size_t begin = audio.samples.size() / 4;
    const std::size_t end = begin * 3;
    double sum = 0;
    for (std::size_t i = begin; i < end; ++i) sum += audio.samples[i] * audio.samples[i];
    const auto middle = static_cast<double>(end - begin);
    CHECK(std::sqrt(sum / middle) == Approx(0.354).margin(0.03));
  }
}

TEST_CASE("an encoder finished without input still produces a valid file", "[media][encode]") {
  talkserve::test::TempDir dir;
  for (AudioFormat format : {AudioFormat::wav, AudioFormat::mp3, AudioFormat::opus,
                             AudioFormat::aac, AudioFormat::flac}) {
    INFO(to_string(format));
    AudioEncoder encoder(format, 16000);
    const std::string bytes = encoder.finish();
    if (format == AudioFormat::aac) {
      CHECK(bytes.empty());  // ADTS has no header of its own: no frames, no bytes
    } else {
      CHECK_FALSE(bytes.empty());
    }
    CHECK_THROWS_AS(encoder.push(std::vector<float>(10, 0.0f)), MediaError);
  }
}

TEST_CASE("an encoder destroyed before finish() releases everything", "[media][encode]") {
  for (AudioFormat format :
       {AudioFormat::mp3, AudioFormat::opus, AudioFormat::aac, AudioFormat::flac}) {
    AudioEncoder encoder(format, 16000);
    CHECK_NOTHROW(encoder.push(std::vector<float>(5000, 0.1f)));
  }
}
