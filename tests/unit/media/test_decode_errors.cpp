// decode_audio() on inputs it must refuse: each maps to one MediaError kind with a message
// that says what was wrong. Run these under ASan/LSan too (TALKSERVE_SANITIZE).

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <random>

#include "support/data_paths.hpp"
#include "support/temp_dir.hpp"
#include "talkserve/media/audio.hpp"
#include "unit/media/media_test_support.hpp"

using namespace talkserve::media;
namespace mt = talkserve::media::test;
using Kind = MediaError::Kind;

namespace {

std::string jfk_path() {
  return talkserve::test::speech_data_dir() + "/jfk.wav";
}

// The MediaError decode_audio throws for `bytes`; fails the test if it returns normally.
MediaError decode_error(const std::string& bytes, const DecodeOptions& options = {}) {
  try {
    const DecodedAudio audio = decode_audio(mt::as_bytes(bytes), options);
    FAIL("decode_audio returned " << audio.samples.size() << " samples instead of throwing");
  } catch (const MediaError& error) {
    return error;
  }
  throw std::logic_error("unreachable");
}

std::string make_with_ffmpeg(const talkserve::test::TempDir& dir, const std::string& name,
                             const std::string& args) {
  const std::string path = (dir.path() / name).string();
  mt::ffmpeg_convert(jfk_path(), args, path);
  return talkserve::test::read_binary_file(path);
}

}  // namespace

TEST_CASE("empty input is MediaError::empty", "[media][decode][errors]") {
  const MediaError error = decode_error("");
  CHECK(error.kind() == Kind::empty);
  CHECK_THAT(error.what(), Catch::Contains("empty"));
}

TEST_CASE("random bytes are MediaError::unsupported", "[media][decode][errors]") {
  for (std::uint32_t seed : {1u, 2u, 3u}) {
    std::mt19937 random(seed);
    std::string bytes(std::size_t{64} * 1024, '\0');
    for (char& c : bytes) c = static_cast<char>(random() & 0xFF);
    const MediaError error = decode_error(bytes);
    INFO("seed " << seed << ": " << error.what());
    CHECK(error.kind() == Kind::unsupported);
    CHECK_THAT(error.what(), Catch::Contains("unrecognised audio format"));
  }
}

TEST_CASE("a text file is MediaError::unsupported", "[media][decode][errors]") {
  std::string text;
  for (int i = 0; i < 200; ++i)
    text += "This is not audio, it is line " + std::to_string(i) + ".\n";
  const MediaError error = decode_error(text);
  INFO(error.what());
  CHECK(error.kind() == Kind::unsupported);
}

TEST_CASE("a video-only file is MediaError::unsupported (no audio stream)",
          "[media][decode][errors]") {
  talkserve::test::TempDir dir;
  const std::string path = (dir.path() / "video.mkv").string();
  mt::run_command(
      "ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i "
      "testsrc=duration=1:size=64x48:rate=10 -c:v ffv1 " +
      mt::shell_quote(path));
  const MediaError error = decode_error(talkserve::test::read_binary_file(path));
  INFO(error.what());
  CHECK(error.kind() == Kind::unsupported);
  CHECK_THAT(error.what(), Catch::Contains("no audio stream"));
}

TEST_CASE("files truncated to their first 60 bytes are refused", "[media][decode][errors]") {
  talkserve::test::TempDir dir;
  SECTION("WAV: the format is recognised but the data chunk is missing -> corrupt") {
    const std::string head = talkserve::test::read_binary_file(jfk_path()).substr(0, 60);
    const MediaError error = decode_error(head);
    INFO(error.what());
    CHECK(error.kind() == Kind::corrupt);
    CHECK_THAT(error.what(), Catch::Contains("wav") && Catch::Contains("truncated"));
  }
  SECTION("MP3: the ID3 tag identifies MP3 but no MPEG frame follows -> corrupt") {
    const std::string head = make_with_ffmpeg(dir, "jfk.mp3", "-c:a libmp3lame").substr(0, 60);
    const MediaError error = decode_error(head);
    INFO(error.what());
    CHECK(error.kind() == Kind::corrupt);
    CHECK_THAT(error.what(), Catch::Contains("mp3"));
  }
  SECTION("FLAC: the fLaC signature is recognised but the metadata is cut -> corrupt") {
    const std::string head = make_with_ffmpeg(dir, "jfk.flac", "-c:a flac").substr(0, 60);
    const MediaError error = decode_error(head);
    INFO(error.what());
    CHECK(error.kind() == Kind::corrupt);
    CHECK_THAT(error.what(), Catch::Contains("flac"));
  }
}

TEST_CASE("an AVI whose LIST INFO chunk claims more bytes than the upload is corrupt",
          "[media][decode][errors]") {
  // FFmpeg allocates each INFO entry at its declared size, bounded only by the LIST's claim:
  // fuzz_audio_decoder's WAV finding, in another RIFF container (2.7 GB claimed, 1.8 GB RSS).
  talkserve::test::TempDir dir;
  std::string avi = make_with_ffmpeg(dir, "jfk.avi", "-c:a pcm_s16le");
  std::size_t at = avi.find("LIST");
  while (at != std::string::npos && avi.compare(at + 8, 4, "INFO") != 0) {
    at = avi.find("LIST", at + 4);
  }
  REQUIRE(at != std::string::npos);
  CHECK_FALSE(decode_audio(mt::as_bytes(avi)).samples.empty());  // as ffmpeg wrote it
  auto put32 = [&](std::size_t offset, std::uint32_t v) { std::memcpy(avi.data() + offset, &v, 4); };
  put32(at + 4, 0xA6030000u);  // the LIST claims 2.7 GB
  put32(at + 16, 64u << 20);   // its first entry 64 MiB
  const MediaError error = decode_error(avi);
  INFO(error.what());
  CHECK(error.kind() == Kind::corrupt);
  CHECK_THAT(error.what(), Catch::Contains("LIST INFO chunk claims 2785214464 bytes"));
}

TEST_CASE("a header with only a few samples after it is corrupt, not a 1 ms decode",
          "[media][decode][errors]") {
  // 16 bytes of PCM after a header that promises 11 s.
  const std::string bytes = talkserve::test::read_binary_file(jfk_path());
  const std::size_t data_at = bytes.find("data") + 8;
  const MediaError error = decode_error(bytes.substr(0, data_at + 16));
  INFO(error.what());
  CHECK(error.kind() == Kind::corrupt);
  CHECK_THAT(error.what(), Catch::Contains("truncated"));
}

TEST_CASE("a file cut in the middle returns the audio before the cut", "[media][decode][errors]") {
  talkserve::test::TempDir dir;
  for (const char* format : {"wav", "mp3", "flac"}) {
    SECTION(format) {
      const std::string full =
          std::string(format) == "wav"
              ? talkserve::test::read_binary_file(jfk_path())
              : make_with_ffmpeg(dir, std::string("jfk.") + format,
                                 std::string(format) == "mp3" ? "-c:a libmp3lame" : "-c:a flac");
      const DecodedAudio audio = decode_audio(mt::as_bytes(full.substr(0, full.size() / 2)));
      CHECK(audio.duration_seconds() > 4.0);
      CHECK(audio.duration_seconds() < 7.0);
    }
  }
}

TEST_CASE("max_seconds is enforced while decoding", "[media][decode][errors]") {
  talkserve::test::TempDir dir;
  DecodeOptions options;
  options.max_seconds = 1.0;
  for (const char* format : {"wav", "mp3", "ogg"}) {
    SECTION(format) {
      const std::string name = format;
      const std::string bytes =
          name == "wav" ? talkserve::test::read_binary_file(jfk_path())
                        : make_with_ffmpeg(dir, "jfk." + name,
                                           name == "mp3" ? "-c:a libmp3lame" : "-c:a libopus");
      const MediaError error = decode_error(bytes, options);
      INFO(error.what());
      CHECK(error.kind() == Kind::too_long);
      // The message reports how much had been decoded when the limit tripped: about 1 s of
      // the 11 s clip, so decoding stopped early instead of finishing and then checking.
      const std::string message = error.what();
      const auto at = message.find("stopped decoding at ");
      REQUIRE(at != std::string::npos);
      const double stopped_at = std::stod(message.substr(at + 20));
      CHECK(stopped_at > 1.0);
      CHECK(stopped_at < 1.2);

      options.max_seconds = 12.0;
      CHECK(decode_audio(mt::as_bytes(bytes), options).duration_seconds() > 10.9);
    }
  }
}

TEST_CASE("max_seconds makes the work independent of the input length", "[media][decode][errors]") {
  // jfk (11 s) and 30 minutes of jfk repeated, as streaming WAVs. With a 1 s limit both must
  // cost about the same; decoding first and checking after would make the long one ~160x
  // slower. (A fixed cost remains: FFmpeg probes the first 32 WAV packets for MP3/AC-3.)
  const std::string jfk = talkserve::test::read_binary_file(jfk_path());
  const std::string pcm = jfk.substr(jfk.find("data") + 8);
  std::string header = encode_audio({}, 16000, AudioFormat::wav).substr(0, 44);
  header.replace(4, 4, "\xff\xff\xff\xff");
  header.replace(40, 4, "\xff\xff\xff\xff");
  const std::string short_wav = header + pcm;
  std::string long_wav = header;
  long_wav.reserve(header.size() + pcm.size() * 164);
  for (int i = 0; i < 164; ++i) long_wav += pcm;

  DecodeOptions options;
  options.max_seconds = 1.0;
  using Clock = std::chrono::steady_clock;
  // Best of five, so a preemption on a loaded machine does not decide the outcome.
  auto limited_decode_time = [&](const std::string& wav) {
    auto best = Clock::duration::max();
    for (int attempt = 0; attempt < 5; ++attempt) {
      const auto start = Clock::now();
      CHECK_THROWS_AS(decode_audio(mt::as_bytes(wav), options), MediaError);
      best = std::min(best, Clock::now() - start);
    }
    return best;
  };
  const auto short_time = limited_decode_time(short_wav);
  const auto long_time = limited_decode_time(long_wav);
  // Named first: CAPTURE splits its argument text at commas, template arguments' too.
  const double short_ms = std::chrono::duration<double, std::milli>(short_time).count();
  const double long_ms = std::chrono::duration<double, std::milli>(long_time).count();
  CAPTURE(short_ms, long_ms);
  CHECK(long_time < 3 * short_time + std::chrono::milliseconds(10));
}

TEST_CASE("invalid decode options are rejected", "[media][decode][errors]") {
  DecodeOptions options;
  options.sample_rate = 0;
  const std::string bytes = talkserve::test::read_binary_file(jfk_path());
  CHECK_THROWS_AS(decode_audio(mt::as_bytes(bytes), options), MediaError);
}
