// The audio of GET /v1/realtime (pipeline/realtime_audio): G.711 against the ITU-T tables'
// known values, round trips, base64, and the wire <-> pipeline rate conversions.

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "pipeline/realtime_audio.hpp"

namespace talkserve::pipeline {
namespace {

std::string pcm16_bytes(const std::vector<std::int16_t>& v) {
  std::string out;
  for (auto s : v) {
    out.push_back(static_cast<char>(s & 0xff));
    out.push_back(static_cast<char>((s >> 8) & 0xff));
  }
  return out;
}

std::vector<float> sine(int rate, double hz, double seconds, float amp = 0.5f) {
  std::vector<float> out(static_cast<std::size_t>(rate * seconds));
  for (std::size_t i = 0; i < out.size(); ++i)
    out[i] = amp * static_cast<float>(std::sin(2 * M_PI * hz * i / rate));
  return out;
}

}  // namespace

TEST_CASE("G.711 u-law matches known code points", "[pipeline][realtime]") {
  struct Known {
    std::int16_t pcm;
    std::uint8_t code;
  };
  for (auto [pcm, code] : std::vector<Known>{{0, 0xFF},
                                             {1, 0xFF},
                                             {-1, 0x7E},
                                             {8, 0xFE},
                                             {-8, 0x7E},
                                             {100, 0xF2},
                                             {-100, 0x72},
                                             {1000, 0xCE},
                                             {-1000, 0x4E},
                                             {12345, 0x97},
                                             {-12345, 0x17},
                                             {32767, 0x80},
                                             {-32768, 0x00}}) {
    INFO(pcm);
    CHECK(ulaw_encode(pcm) == code);
  }
  CHECK(ulaw_decode(0x00) == -32124);
  CHECK(ulaw_decode(0x80) == 32124);
  CHECK(ulaw_decode(0x7F) == 0);
  CHECK(ulaw_decode(0xFF) == 0);
  CHECK(ulaw_decode(0x55) == -716);
  CHECK(ulaw_decode(0xD5) == 716);
  CHECK(ulaw_decode(0x13) == -14460);
}

TEST_CASE("G.711 A-law matches known code points", "[pipeline][realtime]") {
  struct Known {
    std::int16_t pcm;
    std::uint8_t code;
  };
  for (auto [pcm, code] : std::vector<Known>{{0, 0xD5},
                                             {1, 0xD5},
                                             {-1, 0x55},
                                             {-8, 0x55},
                                             {100, 0xD3},
                                             {-100, 0x53},
                                             {1000, 0xFA},
                                             {-1000, 0x7A},
                                             {12345, 0xBD},
                                             {-12345, 0x3D},
                                             {32767, 0xAA},
                                             {-32768, 0x2A}}) {
    INFO(pcm);
    CHECK(alaw_encode(pcm) == code);
  }
  CHECK(alaw_decode(0xD5) == 8);
  CHECK(alaw_decode(0x55) == -8);
  CHECK(alaw_decode(0xAA) == 32256);
  CHECK(alaw_decode(0x2A) == -32256);
  CHECK(alaw_decode(0x00) == -5504);
  CHECK(alaw_decode(0x13) == -2880);
}

TEST_CASE("G.711 round trips: every code is stable, samples come back within a step",
          "[pipeline][realtime]") {
  for (int c = 0; c < 256; ++c) {
    const auto code = static_cast<std::uint8_t>(c);
    INFO(c);
    // u-law has two zeros (0x7F and 0xFF): both decode to 0, which encodes as 0xFF.
    if (code != 0x7F) CHECK(ulaw_encode(ulaw_decode(code)) == code);
    CHECK(alaw_encode(alaw_decode(code)) == code);
  }
  for (int v = -32768; v <= 32767; v += 7) {
    const auto s = static_cast<std::int16_t>(v);
    const int mag = std::abs(v);
    // The quantisation step grows with the segment: at most 1/16 of the magnitude (plus the
    // smallest step near zero).
    const int tolerance = mag / 16 + 16;
    INFO(v);
    CHECK(std::abs(ulaw_decode(ulaw_encode(s)) - v) <= tolerance);
    CHECK(std::abs(alaw_decode(alaw_encode(s)) - v) <= tolerance);
  }
}

TEST_CASE("base64 encodes and decodes, and refuses what is not base64", "[pipeline][realtime]") {
  CHECK(base64_encode("") == "");
  CHECK(base64_encode("f") == "Zg==");
  CHECK(base64_encode("foobar") == "Zm9vYmFy");
  CHECK(base64_decode("Zm9vYg==") == "foob");
  CHECK(base64_decode("Zm9v\r\nYmFy") == "foobar");
  CHECK(base64_decode("Zm9vYg") == "foob");  // unpadded
  CHECK(base64_decode("") == "");
  CHECK_FALSE(base64_decode("Zm9v!mFy"));
  CHECK_FALSE(base64_decode("Z"));
  CHECK_FALSE(base64_decode("Zm=9"));
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  CHECK(base64_decode(base64_encode(all)) == all);
}

TEST_CASE("format names in both spellings", "[pipeline][realtime]") {
  CHECK(parse_format_name("pcm16") == AudioFormat::pcm16);
  CHECK(parse_format_name("audio/pcmu") == AudioFormat::g711_ulaw);
  CHECK(parse_format_name("g711_alaw") == AudioFormat::g711_alaw);
  CHECK_FALSE(parse_format_name("opus"));
  CHECK(ga_format_name(AudioFormat::g711_alaw) == "audio/pcma");
  CHECK(beta_format_name(AudioFormat::g711_ulaw) == "g711_ulaw");
  CHECK(wire_ms(AudioFormat::pcm16, 4800) == Approx(100));
  CHECK(wire_ms(AudioFormat::g711_ulaw, 800) == Approx(100));
}

TEST_CASE("input audio becomes 16 kHz floats; output audio the wire format",
          "[pipeline][realtime]") {
  SECTION("pcm16 at 24 kHz") {
    InputAudioDecoder in(AudioFormat::pcm16);
    CHECK_THROWS_AS(in.push(std::string(3, '\0')), std::invalid_argument);
    std::size_t total = 0;
    std::vector<std::int16_t> second(24000);
    for (std::size_t i = 0; i < second.size(); ++i)
      second[i] = static_cast<std::int16_t>(8000 * std::sin(2 * M_PI * 440 * i / 24000.0));
    for (int piece = 0; piece < 10; ++piece) {
      std::vector<std::int16_t> part(second.begin() + piece * 2400,
                                     second.begin() + (piece + 1) * 2400);
      total += in.push(pcm16_bytes(part)).size();
    }
    CHECK(total == Approx(16000).margin(64));  // the resampler holds back its filter delay
  }
  SECTION("u-law at 8 kHz") {
    InputAudioDecoder in(AudioFormat::g711_ulaw);
    std::string bytes(8000, static_cast<char>(ulaw_encode(4000)));
    const auto out = in.push(bytes);
    CHECK(out.size() == Approx(16000).margin(64));
    CHECK(out[out.size() / 2] == Approx(ulaw_decode(ulaw_encode(4000)) / 32768.0f).margin(0.01));
  }
  SECTION("output: pcm16 passes 24 kHz through, G.711 resamples to 8 kHz") {
    const auto tone = sine(24000, 300, 1.0);
    OutputAudioEncoder pcm(AudioFormat::pcm16);
    CHECK(pcm.push(tone).size() == 48000);
    CHECK(pcm.flush().empty());
    OutputAudioEncoder alaw(AudioFormat::g711_alaw);
    const std::size_t n = alaw.push(tone).size() + alaw.flush().size();
    CHECK(n == Approx(8000).margin(8));
    // Through u-law and back: the tone survives (the sign of the first quarter period).
    OutputAudioEncoder ulaw(AudioFormat::g711_ulaw);
    const std::string wire = ulaw.push(tone) + ulaw.flush();
    int positive = 0;
    for (std::size_t i = 20; i < 60 && i < wire.size(); ++i)
      positive += ulaw_decode(static_cast<std::uint8_t>(wire[i])) > 0;
    CHECK(positive > 0);
  }
}

}  // namespace talkserve::pipeline
