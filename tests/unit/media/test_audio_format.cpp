#include <catch2/catch.hpp>

#include "talkserve/media/audio.hpp"

using namespace talkserve::media;

TEST_CASE("audio format names round-trip and map to MIME types", "[media][format]") {
  const AudioFormat all[] = {AudioFormat::wav, AudioFormat::mp3,  AudioFormat::opus,
                             AudioFormat::aac, AudioFormat::flac, AudioFormat::pcm};
  for (AudioFormat format : all) {
    const auto parsed = parse_audio_format(to_string(format));
    REQUIRE(parsed.has_value());
    CHECK(*parsed == format);
  }
  CHECK(content_type(AudioFormat::wav) == "audio/wav");
  CHECK(content_type(AudioFormat::mp3) == "audio/mpeg");
  CHECK(content_type(AudioFormat::opus) == "audio/ogg");
  CHECK(content_type(AudioFormat::aac) == "audio/aac");
  CHECK(content_type(AudioFormat::flac) == "audio/flac");
  CHECK(content_type(AudioFormat::pcm) == "audio/pcm");
}

TEST_CASE("unknown audio format names are rejected", "[media][format]") {
  CHECK_FALSE(parse_audio_format("").has_value());
  CHECK_FALSE(parse_audio_format("WAV").has_value());
  CHECK_FALSE(parse_audio_format("ogg").has_value());
  CHECK_FALSE(parse_audio_format("mp3 ").has_value());
}
