// decode_audio() on compressed versions of jfk.wav made at test time by the ffmpeg CLI.

#include <catch2/catch.hpp>
#include <cmath>

#include "support/data_paths.hpp"
#include "support/temp_dir.hpp"
#include "talkserve/media/audio.hpp"
#include "unit/media/media_test_support.hpp"

using namespace talkserve::media;
namespace mt = talkserve::media::test;

namespace {

struct Variant {
  const char* file;
  const char* ffmpeg_args;
  const char* container;
  const char* codec;
  int source_rate;
  int source_channels;
  bool lossless;
};

const Variant kVariants[] = {
    {"jfk.mp3", "-c:a libmp3lame -b:a 64k", "mp3", "mp3", 16000, 1, false},
    {"jfk.ogg", "-c:a libopus -b:a 32k", "ogg", "opus", 48000, 1, false},
    {"jfk.webm", "-c:a libopus -b:a 32k", "matroska,webm", "opus", 48000, 1, false},
    {"jfk.flac", "-c:a flac", "flac", "flac", 16000, 1, true},
    {"jfk.m4a", "-c:a aac -b:a 64k", "mov,mp4,m4a,3gp,3g2,mj2", "aac", 16000, 1, false},
    {"jfk_stereo_44k.wav", "-ac 2 -ar 44100 -c:a pcm_s16le", "wav", "pcm_s16le", 44100, 2, true},
};

}  // namespace

TEST_CASE("jfk.wav re-encoded by ffmpeg decodes to the same speech", "[media][decode][codecs]") {
  const std::string source = talkserve::test::speech_data_dir() + "/jfk.wav";
  const DecodedAudio original =
      decode_audio(mt::as_bytes(talkserve::test::read_binary_file(source)));
  REQUIRE(std::abs(original.duration_seconds() - 11.0) < 0.001);
  talkserve::test::TempDir dir;

  for (const Variant& variant : kVariants) {
    SECTION(variant.file) {
      const std::string path = (dir.path() / variant.file).string();
      mt::ffmpeg_convert(source, variant.ffmpeg_args, path);
      const DecodedAudio audio =
          decode_audio(mt::as_bytes(talkserve::test::read_binary_file(path)));

      CHECK(audio.container == variant.container);
      CHECK(audio.codec == variant.codec);
      CHECK(audio.source_sample_rate == variant.source_rate);
      CHECK(audio.source_channels == variant.source_channels);
      CHECK(audio.sample_rate == 16000);
      CHECK(std::abs(audio.duration_seconds() - original.duration_seconds()) < 0.050);

      // These containers carry the encoder delay (LAME header, Opus pre-skip, MP4 edit list),
      // so the decoded speech lines up with the original within a few milliseconds.
      const mt::Similarity wave =
          mt::waveform_similarity(original.samples, audio.samples, 16000, 5);
      const mt::Similarity envelope =
          mt::envelope_similarity(original.samples, audio.samples, 16000, 20);
      CAPTURE(wave.correlation, wave.lag_ms, envelope.correlation, envelope.lag_ms);
      CHECK(envelope.correlation > 0.99);
      CHECK(std::abs(envelope.lag_ms) <= 2);
      CHECK(wave.correlation > (variant.lossless ? 0.999 : 0.95));
      CHECK(std::abs(wave.lag_ms) <= 2);
    }
  }
}
