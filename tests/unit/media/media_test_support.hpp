#pragma once
// Shared helpers for the media tests: the ffmpeg/ffprobe command-line tools (an independent
// implementation to produce inputs and check outputs), WAV header parsing, and signal
// similarity measures that tolerate codec delay.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace talkserve::media::test {

// Runs a shell command; returns its stdout. Throws std::runtime_error on a non-zero exit.
std::string run_command(const std::string& command);
std::string shell_quote(const std::string& text);

// ffmpeg -i <input> <args> <output>, quietly, overwriting.
void ffmpeg_convert(const std::string& input, const std::string& args, const std::string& output);

// ffprobe's view of a file: "format_name=...", "codec_name=..." etc. for the first audio stream.
struct ProbeResult {
  std::string format_name;
  std::string codec_name;
  int sample_rate = 0;
  int channels = 0;
};
ProbeResult ffprobe(const std::string& path, const std::string& input_args = "");

// Duration from a PCM WAV header: data chunk bytes / block align / sample rate.
struct WavHeaderInfo {
  int sample_rate = 0;
  int channels = 0;
  double duration_seconds = 0;
};
WavHeaderInfo parse_wav_header(const std::string& bytes);

std::span<const std::uint8_t> as_bytes(const std::string& bytes);
std::vector<float> pcm_s16le_to_float(const std::string& bytes);

struct Similarity {
  double correlation = 0;  // best value found
  double lag_ms = 0;       // shift of `test` relative to `reference` at that value
};
// Normalised cross-correlation of the waveforms, best over lags within +-max_lag_ms.
Similarity waveform_similarity(const std::vector<float>& reference, const std::vector<float>& test,
                               int sample_rate, int max_lag_ms);
// Pearson correlation of 20 ms RMS envelopes, best over lags within +-max_lag_ms (1 ms steps).
// Insensitive to phase, so it also fits codecs that do not preserve the waveform.
Similarity envelope_similarity(const std::vector<float>& reference, const std::vector<float>& test,
                               int sample_rate, int max_lag_ms);

}  // namespace talkserve::media::test
