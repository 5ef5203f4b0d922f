// bench_video [--seconds S] [--size N] [--runs R]
// Encode speed of the video output at N x N (default 512), 25 fps, with a 24 kHz tone as the
// audio: encode_mp4_clip() on a whole clip, and FragmentedMp4Writer fed frame by frame as a
// live stream (x264 zerolatency). Reports frames per second (median of R runs) and the
// real-time factor (encode time / media duration). Frames are generated before timing.
// Prints one JSON object on stdout, then a human table on stderr.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "talkserve/media/video.hpp"

using namespace talkserve::media;
using Clock = std::chrono::steady_clock;

namespace {

double arg_double(int argc, char** argv, const char* name, double fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return std::atof(argv[i + 1]);
  }
  return fallback;
}

// A scrolling gradient with a moving box: motion everywhere, like a talking head's worst case.
RgbFrame synthetic_frame(int size, int index) {
  RgbFrame frame{size, size, std::vector<std::uint8_t>(static_cast<std::size_t>(size) * size * 3)};
  const int box = size / 8;
  const int box_x = (index * 4) % (size - box);
  for (int y = 0; y < size; ++y) {
    for (int x = 0; x < size; ++x) {
      std::uint8_t* p = &frame.data[(static_cast<std::size_t>(y) * size + x) * 3];
      const bool in_box = x >= box_x && x < box_x + box && y >= size / 2 && y < size / 2 + box;
      p[0] = in_box ? 255 : static_cast<std::uint8_t>((x + index * 3) & 0xff);
      p[1] = in_box ? 255 : static_cast<std::uint8_t>((y + index * 2) & 0xff);
      p[2] = in_box ? 255 : static_cast<std::uint8_t>(((x + y) / 2) & 0xff);
    }
  }
  return frame;
}

struct Run {
  double seconds = 0;
  std::size_t bytes = 0;
};

template <typename F>
Run median_run(int runs, F&& encode) {
  std::vector<Run> results;
  for (int i = 0; i < runs; ++i) {
    const auto start = Clock::now();
    const std::size_t bytes = encode();
    results.push_back({std::chrono::duration<double>(Clock::now() - start).count(), bytes});
  }
  std::sort(results.begin(), results.end(),
            [](const Run& a, const Run& b) { return a.seconds < b.seconds; });
  return results[results.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const double media_seconds = arg_double(argc, argv, "--seconds", 10);
  const int size = static_cast<int>(arg_double(argc, argv, "--size", 512));
  const int runs = std::max(1, static_cast<int>(arg_double(argc, argv, "--runs", 3)));

  VideoParams params;
  params.width = size;
  params.height = size;
  const int frame_count = static_cast<int>(std::lround(media_seconds * params.fps));
  std::vector<RgbFrame> frames;
  for (int i = 0; i < frame_count; ++i) frames.push_back(synthetic_frame(size, i));
  std::vector<float> audio(
      static_cast<std::size_t>(std::lround(media_seconds * params.audio_sample_rate)));
  for (std::size_t i = 0; i < audio.size(); ++i) {
    audio[i] = 0.5f * static_cast<float>(
                          std::sin(2 * 3.14159265358979 * 440 * i / params.audio_sample_rate));
  }
  const std::size_t samples_per_frame = audio.size() / frames.size();

  const Run clip = median_run(runs, [&] { return encode_mp4_clip(frames, audio, params).size(); });
  const Run live = median_run(runs, [&] {
    FragmentedMp4Writer writer(params);
    std::size_t bytes = writer.init_segment().size();
    for (int i = 0; i < frame_count; ++i) {
      writer.push_audio(
          std::span<const float>(audio.data() + i * samples_per_frame, samples_per_frame));
      writer.push_frame(frames[i]);
      for (const std::string& segment : writer.take_segments()) bytes += segment.size();
    }
    for (const std::string& segment : writer.finish()) bytes += segment.size();
    return bytes;
  });

  nlohmann::json out;
  out["size"] = size;
  out["fps"] = params.fps;
  out["preset"] = params.preset;
  out["crf"] = params.crf;
  out["media_seconds"] = media_seconds;
  out["runs"] = runs;
  out["modes"] = nlohmann::json::array();
  std::fprintf(stderr, "%-11s %9s %12s %8s %10s\n", "mode", "size", "frames/s", "rtf", "kbit/s");
  for (const auto& [name, run] : {std::pair{"clip", clip}, std::pair{"fragmented", live}}) {
    const double fps = frame_count / run.seconds;
    const double rtf = run.seconds / media_seconds;
    const double kbps = run.bytes * 8.0 / media_seconds / 1000.0;
    out["modes"].push_back({{"mode", name},
                            {"frames_per_second", fps},
                            {"real_time_factor", rtf},
                            {"kbit_per_second", kbps}});
    std::fprintf(stderr, "%-11s %5dx%-3d %12.1f %8.3f %10.0f\n", name, size, size, fps, rtf, kbps);
  }
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}
