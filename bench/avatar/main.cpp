// bench_avatar: frames/s of the viseme renderer on a 512x512 portrait, single-threaded and with
// two threads rendering independent streams (as two sessions would), phoneme-driven and
// audio-driven. Prints one JSON line, then a table.
//
//   bench_avatar [--avatar PATH] [--seconds S] [--dump DIR]
//
// --dump DIR writes one rendered sequence (2.4 s of speech, then 2 s idle) as DIR/frame_NNNN.png
// plus DIR/visemes.png, a sheet of mouth close-ups per viseme, for looking at.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "talkserve/avatar/avatar.hpp"
#include "talkserve/avatar/viseme_renderer.hpp"

namespace {

using namespace talkserve;
using Clock = std::chrono::steady_clock;

constexpr int kSampleRate = 24000;
constexpr int kFps = 25;

// Syllable-like audio: a 200 Hz buzz amplitude-modulated at 4 Hz.
std::vector<float> speech_like_audio(double seconds) {
  std::vector<float> audio(static_cast<std::size_t>(seconds * kSampleRate));
  for (std::size_t i = 0; i < audio.size(); ++i) {
    const double t = static_cast<double>(i) / kSampleRate;
    const double env = 0.5 - 0.5 * std::cos(2 * M_PI * 4 * t);
    audio[i] = static_cast<float>(0.4 * env * std::sin(2 * M_PI * 200 * t));
  }
  return audio;
}

// A timeline cycling through all visemes, 90 ms each.
std::vector<speech::PhonemeEvent> cycling_timeline(double seconds) {
  std::vector<speech::PhonemeEvent> events;
  const speech::Viseme order[] = {speech::Viseme::aa, speech::Viseme::mbp, speech::Viseme::ee,
                                  speech::Viseme::dd, speech::Viseme::oh, speech::Viseme::fv,
                                  speech::Viseme::ou, speech::Viseme::kk, speech::Viseme::ch,
                                  speech::Viseme::rr, speech::Viseme::th, speech::Viseme::rest};
  int k = 0;
  for (double t = 0; t < seconds; t += 0.09, ++k)
    events.push_back({"x", t, 0.09, order[k % 12]});
  return events;
}

// Renders `seconds` of speech in 0.5 s chunks; returns the number of frames.
long render_stream(const avatar::LipSyncRenderer& renderer, const avatar::Avatar& av,
                   double seconds, bool with_phonemes) {
  const std::vector<float> chunk_audio = speech_like_audio(0.5);
  const std::vector<speech::PhonemeEvent> timeline = cycling_timeline(0.5);
  avatar::RenderState state;
  long frames = 0;
  for (double done = 0; done < seconds; done += 0.5) {
    avatar::RenderInput in;
    in.audio = chunk_audio;
    in.sample_rate = kSampleRate;
    in.fps = kFps;
    if (with_phonemes) in.phonemes = timeline;
    frames += static_cast<long>(renderer.render(av, in, state).size());
  }
  return frames;
}

double frames_per_second(const avatar::LipSyncRenderer& renderer, const avatar::Avatar& av,
                         double seconds, int threads, bool with_phonemes) {
  std::vector<long> frames(static_cast<std::size_t>(threads), 0);
  const auto start = Clock::now();
  std::vector<std::thread> workers;
  for (int i = 0; i < threads; ++i)
    workers.emplace_back([&, i] { frames[i] = render_stream(renderer, av, seconds, with_phonemes); });
  for (auto& w : workers) w.join();
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  long total = 0;
  for (long f : frames) total += f;
  return static_cast<double>(total) / wall;
}

cv::Mat to_bgr(const media::RgbFrame& f) {
  cv::Mat rgb(f.height, f.width, CV_8UC3, const_cast<std::uint8_t*>(f.data.data()));
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  return bgr;
}

void dump(const avatar::LipSyncRenderer& renderer, const avatar::Avatar& av, const std::string& dir) {
  std::filesystem::create_directories(dir);
  avatar::RenderState state;
  avatar::RenderInput in;
  const std::vector<float> audio = speech_like_audio(2.4);
  in.audio = audio;
  in.phonemes = cycling_timeline(2.4);
  std::vector<media::RgbFrame> frames = renderer.render(av, in, state);
  for (auto& f : renderer.idle(av, 50, kFps, state)) frames.push_back(std::move(f));
  char name[64];
  for (std::size_t i = 0; i < frames.size(); ++i) {
    std::snprintf(name, sizeof name, "/frame_%04zu.png", i);
    cv::imwrite(dir + name, to_bgr(frames[i]));
  }
  // Close-ups: each viseme held for 0.4 s, the last frame's mouth, 3x.
  const avatar::Box& m = av.mouth;
  const cv::Rect crop(std::max(0, m.x - m.width / 4), std::max(0, m.y - m.height / 2),
                      std::min(av.portrait.width - std::max(0, m.x - m.width / 4), m.width * 3 / 2),
                      std::min(av.portrait.height - std::max(0, m.y - m.height / 2), m.height * 2));
  std::vector<cv::Mat> tiles;
  for (int v = 0; v < speech::kVisemeCount; ++v) {
    avatar::RenderState s;
    avatar::RenderInput held;
    const std::vector<float> silence(static_cast<std::size_t>(0.4 * kSampleRate), 0.0f);
    held.audio = silence;
    held.phonemes = {{"x", 0.0, 0.4, static_cast<speech::Viseme>(v)}};
    const auto f = renderer.render(av, held, s);
    cv::Mat tile;
    cv::resize(to_bgr(f.back())(crop), tile, cv::Size(), 3, 3, cv::INTER_CUBIC);
    cv::putText(tile, std::to_string(v), {4, 20}, cv::FONT_HERSHEY_SIMPLEX, 0.6, {0, 255, 0});
    tiles.push_back(tile);
  }
  std::vector<cv::Mat> rows;
  for (int r = 0; r < 3; ++r) {
    cv::Mat row;
    cv::hconcat(std::vector<cv::Mat>(tiles.begin() + r * 4, tiles.begin() + r * 4 + 4), row);
    rows.push_back(row);
  }
  cv::Mat sheet;
  cv::vconcat(rows, sheet);
  cv::imwrite(dir + "/visemes.png", sheet);
  std::printf("wrote %zu frames and visemes.png to %s\n", frames.size(), dir.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  std::string path = TALKSERVE_DEFAULT_PORTRAIT, dump_dir;
  double seconds = 20;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--avatar" && i + 1 < argc) path = argv[++i];
    else if (arg == "--seconds" && i + 1 < argc) seconds = std::stod(argv[++i]);
    else if (arg == "--dump" && i + 1 < argc) dump_dir = argv[++i];
    else {
      std::fprintf(stderr, "usage: bench_avatar [--avatar PATH] [--seconds S] [--dump DIR]\n");
      return 2;
    }
  }
  try {
    const auto av = avatar::load_avatar(path, avatar::AvatarLoadOptions{});
    const auto renderer = avatar::make_viseme_renderer();
    if (!dump_dir.empty()) dump(*renderer, *av, dump_dir);
    render_stream(*renderer, *av, 1.0, true);  // warm up
    const double one = frames_per_second(*renderer, *av, seconds, 1, true);
    const double two = frames_per_second(*renderer, *av, seconds, 2, true);
    const double audio_one = frames_per_second(*renderer, *av, seconds, 1, false);
    std::printf("{\"bench\":\"avatar\",\"renderer\":\"%s\",\"width\":%d,\"height\":%d,"
                "\"fps_1_thread\":%.1f,\"fps_2_threads\":%.1f,\"fps_1_thread_audio_driven\":%.1f,"
                "\"realtime_25fps_streams_1_thread\":%.1f}\n",
                renderer->version().c_str(), av->portrait.width, av->portrait.height, one, two,
                audio_one, one / kFps);
    std::printf("%-34s %10s\n", "case", "frames/s");
    std::printf("%-34s %10.1f\n", "phonemes, 1 thread", one);
    std::printf("%-34s %10.1f\n", "phonemes, 2 threads (2 streams)", two);
    std::printf("%-34s %10.1f\n", "audio envelope, 1 thread", audio_one);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_avatar: %s\n", e.what());
    return 1;
  }
  return 0;
}
