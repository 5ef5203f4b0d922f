// decode_audio() (src/media/audio_decoder.cpp): uploaded bytes through FFmpeg's probe, demuxers
// and decoders from memory (memory_io), then the mono resampler, as POST
// /v1/audio/transcriptions and the talk endpoint decode them. FFmpeg itself is not
// instrumented; our glue (custom I/O, frame loop, resampler, error mapping) is.
//
// Fails on a sanitizer report, an exception other than MediaError, or a result that breaks
// the documented contract: the requested rate, samples in [-1, 1] and finite, at most
// max_seconds of audio, non-empty on success.

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

#include <spdlog/spdlog.h>

#include "talkserve/media/audio.hpp"

namespace {

[[noreturn]] void fail(const char* why) {
  std::fprintf(stderr, "fuzz_audio_decoder: %s\n", why);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // FFmpeg's log goes to spdlog (ffmpeg_raii.cpp): every damaged packet would be a line.
  spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using talkserve::media::MediaError;
  talkserve::media::DecodeOptions options;
  options.sample_rate = 16000;
  options.max_seconds = 30;  // the transcription endpoint's kind of cap; bounds each run
  try {
    const auto audio = talkserve::media::decode_audio(std::span(data, size), options);
    if (audio.sample_rate != options.sample_rate) fail("wrong output rate");
    if (audio.samples.empty()) fail("success without samples");
    // The resampler's tail may add a few ms past the cap; a frame more is a broken cap.
    if (audio.duration_seconds() > options.max_seconds + 1.0) fail("longer than max_seconds");
    for (float s : audio.samples) {
      if (!std::isfinite(s) || std::fabs(s) > 1.0001f) fail("sample not finite or outside [-1, 1]");
    }
  } catch (const MediaError&) {
  }
  return 0;
}
