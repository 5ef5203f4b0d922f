#include "unit/media/media_test_support.hpp"

#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <stdexcept>

namespace talkserve::media::test {

std::string shell_quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

std::string run_command(const std::string& command) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) throw std::runtime_error("popen failed: " + command);
  std::string output;
  std::array<char, 4096> buffer{};
  std::size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0)
    output.append(buffer.data(), n);
  const int status = pclose(pipe);
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw std::runtime_error("command failed: " + command + "\n" + output);
  }
  return output;
}

void ffmpeg_convert(const std::string& input, const std::string& args, const std::string& output) {
  run_command("ffmpeg -nostdin -hide_banner -loglevel error -y -i " + shell_quote(input) + " " +
              args + " " + shell_quote(output));
}

ProbeResult ffprobe(const std::string& path, const std::string& input_args) {
  const std::string out = run_command(
      "ffprobe -v error " + input_args +
      " -select_streams a:0 -show_entries format=format_name:stream=codec_name,sample_rate,channels"
      " -of default=noprint_wrappers=1 " +
      shell_quote(path));
  ProbeResult result;
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = line.substr(0, eq);
    const std::string value = line.substr(eq + 1);
    if (key == "format_name") result.format_name = value;
    if (key == "codec_name") result.codec_name = value;
    if (key == "sample_rate") result.sample_rate = std::atoi(value.c_str());
    if (key == "channels") result.channels = std::atoi(value.c_str());
  }
  return result;
}

namespace {

std::uint32_t read_u32(const std::string& bytes, std::size_t at) {
  std::uint32_t value = 0;
  for (int i = 3; i >= 0; --i) value = (value << 8) | static_cast<std::uint8_t>(bytes.at(at + i));
  return value;
}

std::uint16_t read_u16(const std::string& bytes, std::size_t at) {
  return static_cast<std::uint16_t>(static_cast<std::uint8_t>(bytes.at(at)) |
                                    (static_cast<std::uint8_t>(bytes.at(at + 1)) << 8));
}

}  // namespace

WavHeaderInfo parse_wav_header(const std::string& bytes) {
  if (bytes.size() < 12 || bytes.compare(0, 4, "RIFF") != 0 || bytes.compare(8, 4, "WAVE") != 0) {
    throw std::runtime_error("not a RIFF/WAVE file");
  }
  WavHeaderInfo info;
  int block_align = 0;
  std::size_t at = 12;
  while (at + 8 <= bytes.size()) {
    const std::string id = bytes.substr(at, 4);
    const std::uint32_t size = read_u32(bytes, at + 4);
    if (id == "fmt ") {
      info.channels = read_u16(bytes, at + 10);
      info.sample_rate = static_cast<int>(read_u32(bytes, at + 12));
      block_align = read_u16(bytes, at + 20);
    } else if (id == "data") {
      if (block_align == 0 || info.sample_rate == 0) throw std::runtime_error("data before fmt");
      // Whole sample frames only: a trailing partial frame is not audio.
      const std::uint32_t frames = size / static_cast<std::uint32_t>(block_align);
      info.duration_seconds = static_cast<double>(frames) / info.sample_rate;
      return info;
    }
    at += 8 + size + (size & 1);
  }
  throw std::runtime_error("no data chunk");
}

std::span<const std::uint8_t> as_bytes(const std::string& bytes) {
  return {reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()};
}

std::vector<float> pcm_s16le_to_float(const std::string& bytes) {
  std::vector<float> out(bytes.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<float>(static_cast<std::int16_t>(read_u16(bytes, 2 * i))) / 32768.0f;
  }
  return out;
}

namespace {

double pearson(const std::vector<double>& a, const std::vector<double>& b) {
  const std::size_t n = std::min(a.size(), b.size());
  if (n < 2) return 0;
  double mean_a = 0, mean_b = 0;
  for (std::size_t i = 0; i < n; ++i) {
    mean_a += a[i];
    mean_b += b[i];
  }
  mean_a /= static_cast<double>(n);
  mean_b /= static_cast<double>(n);
  double ab = 0, aa = 0, bb = 0;
  for (std::size_t i = 0; i < n; ++i) {
    ab += (a[i] - mean_a) * (b[i] - mean_b);
    aa += (a[i] - mean_a) * (a[i] - mean_a);
    bb += (b[i] - mean_b) * (b[i] - mean_b);
  }
  return aa > 0 && bb > 0 ? ab / std::sqrt(aa * bb) : 0;
}

}  // namespace

Similarity waveform_similarity(const std::vector<float>& reference, const std::vector<float>& test,
                               int sample_rate, int max_lag_ms) {
  Similarity best{-2, 0};
  const long max_lag = static_cast<long>(sample_rate) * max_lag_ms / 1000;
  for (long lag = -max_lag; lag <= max_lag; ++lag) {
    double dot = 0, rr = 0, tt = 0;
    for (std::size_t i = 0; i < reference.size(); ++i) {
      const long j = static_cast<long>(i) + lag;
      if (j < 0 || j >= static_cast<long>(test.size())) continue;
      dot += static_cast<double>(reference[i]) * test[j];
      rr += static_cast<double>(reference[i]) * reference[i];
      tt += static_cast<double>(test[j]) * test[j];
    }
    const double value = rr > 0 && tt > 0 ? dot / std::sqrt(rr * tt) : 0;
    if (value > best.correlation) best = {value, 1000.0 * static_cast<double>(lag) / sample_rate};
  }
  return best;
}

Similarity envelope_similarity(const std::vector<float>& reference, const std::vector<float>& test,
                               int sample_rate, int max_lag_ms) {
  const long window = sample_rate / 50;  // 20 ms
  auto prefix = [](const std::vector<float>& x) {
    std::vector<double> sums(x.size() + 1, 0.0);
    for (std::size_t i = 0; i < x.size(); ++i)
      sums[i + 1] = sums[i] + static_cast<double>(x[i]) * x[i];
    return sums;
  };
  const auto ref_sums = prefix(reference);
  const auto test_sums = prefix(test);
  auto rms = [window](const std::vector<double>& sums, long start) {
    return std::sqrt((sums[start + window] - sums[start]) / static_cast<double>(window));
  };
  Similarity best{-2, 0};
  const long step = std::max(1, sample_rate / 1000);
  for (long lag_ms = -max_lag_ms; lag_ms <= max_lag_ms; ++lag_ms) {
    const long lag = lag_ms * step;
    std::vector<double> a, b;
    for (long start = 0; start + window <= static_cast<long>(reference.size()); start += window) {
      const long shifted = start + lag;
      if (shifted < 0 || shifted + window > static_cast<long>(test.size())) continue;
      a.push_back(rms(ref_sums, start));
      b.push_back(rms(test_sums, shifted));
    }
    const double value = pearson(a, b);
    if (value > best.correlation) best = {value, static_cast<double>(lag_ms)};
  }
  return best;
}

}  // namespace talkserve::media::test
