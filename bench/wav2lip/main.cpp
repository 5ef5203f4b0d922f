// bench_wav2lip: the Wav2Lip network's frames/s at batch 1, 4 and 16 on this machine, and what
// cross-session batching buys the renderer: S sessions rendering concurrently through one
// executor (max_batch 16) against the same sessions one frame per forward pass, one after the
// other. Prints one JSON line on stdout and a table on stderr.
//
//   bench_wav2lip [--weights FILE] [--avatar IMAGE] [--sessions S] [--seconds T] [--iters N]
//                 [--threads N] [--dump DIR]
//
// Without --weights it writes random full-size weights to a temporary file: the speed of the
// network does not depend on the values. --dump DIR writes the first session's frames as PNGs.

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "talkserve/avatar/avatar.hpp"
#include "talkserve/avatar/wav2lip.hpp"

namespace {

using namespace talkserve;
using SteadyClock = std::chrono::steady_clock;

constexpr int kRate = 24000;

struct Args {
  std::string weights;
  std::string avatar = TALKSERVE_DEFAULT_PORTRAIT;
  int sessions = 4;
  double seconds = 0.64;  // 16 frames per session
  int iters = 3;
  int threads = 0;
  std::string dump;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "missing value for %s\n", k.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (k == "--weights") a.weights = value();
    else if (k == "--avatar") a.avatar = value();
    else if (k == "--sessions") a.sessions = std::stoi(value());
    else if (k == "--seconds") a.seconds = std::stod(value());
    else if (k == "--iters") a.iters = std::stoi(value());
    else if (k == "--threads") a.threads = std::stoi(value());
    else if (k == "--dump") a.dump = value();
    else {
      std::fprintf(stderr, "unknown argument %s\n", k.c_str());
      std::exit(2);
    }
  }
  return a;
}

double seconds_since(SteadyClock::time_point t0) {
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

std::vector<float> voice(double seconds, int session) {
  std::vector<float> v(static_cast<std::size_t>(seconds * kRate));
  const double f0 = 110 + 30 * session;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const double t = static_cast<double>(i) / kRate;
    const double env = 0.5 - 0.5 * std::cos(2 * M_PI * 4 * t);
    v[i] = static_cast<float>(0.4 * env * std::sin(2 * M_PI * f0 * t));
  }
  return v;
}

// Frames/s of Wav2LipModel::forward at one batch size (after one warm-up pass).
double network_fps(const avatar::Wav2LipModel& model, std::size_t batch, int iters) {
  const std::vector<float> mels(batch * 80 * 16, -1.0f), faces(batch * 6 * 96 * 96, 0.5f);
  model.forward(mels, faces, batch);
  const auto t0 = SteadyClock::now();
  for (int i = 0; i < iters; ++i) model.forward(mels, faces, batch);
  return static_cast<double>(batch) * iters / seconds_since(t0);
}

// Wall time for every session to render its audio: concurrently (one thread per session) or
// one session after the other.
double render_sessions(const avatar::LipSyncRenderer& r, const avatar::Avatar& av,
                       const std::vector<std::vector<float>>& audio, bool concurrent,
                       std::vector<std::vector<media::RgbFrame>>* frames = nullptr) {
  auto one = [&](std::size_t s) {
    avatar::RenderInput in;
    in.audio = audio[s];
    in.sample_rate = kRate;
    avatar::RenderState state;
    auto out = r.render(av, in, state);
    if (frames) (*frames)[s] = std::move(out);
  };
  if (frames) frames->resize(audio.size());
  const auto t0 = SteadyClock::now();
  if (concurrent) {
    std::vector<std::thread> threads;
    for (std::size_t s = 0; s < audio.size(); ++s) threads.emplace_back(one, s);
    for (auto& t : threads) t.join();
  } else {
    for (std::size_t s = 0; s < audio.size(); ++s) one(s);
  }
  return seconds_since(t0);
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse(argc, argv);
  try {
    std::string weights = args.weights;
    std::filesystem::path temp;
    if (weights.empty()) {
      temp = std::filesystem::temp_directory_path() / ("bench_wav2lip_" + std::to_string(::getpid()) + ".safetensors");
      avatar::write_random_wav2lip(temp.string(), 1);
      weights = temp.string();
    }
    const auto av = avatar::load_avatar(args.avatar, avatar::AvatarLoadOptions{});

    avatar::Wav2LipOptions solo_opts;
    solo_opts.weights = weights;
    solo_opts.threads = args.threads;
    solo_opts.batching.max_batch = 1;
    const auto solo = avatar::make_wav2lip_renderer(solo_opts);
    const avatar::Wav2LipModel& model = solo->model();

    nlohmann::json network = nlohmann::json::object();
    for (std::size_t b : {1u, 4u, 16u}) {
      const double fps = network_fps(model, b, std::max(1, args.iters * (b == 1 ? 4 : 1)));
      network[std::to_string(b)] = fps;
      std::fprintf(stderr, "network batch %2zu: %7.2f frames/s\n", b, fps);
    }

    avatar::Wav2LipOptions batched_opts = solo_opts;
    batched_opts.batching = avatar::Wav2LipOptions::default_batching();
    const auto batched = avatar::make_wav2lip_renderer(batched_opts);
    std::vector<std::vector<float>> audio;
    for (int s = 0; s < args.sessions; ++s) audio.push_back(voice(args.seconds, s));
    std::vector<std::vector<media::RgbFrame>> frames;
    render_sessions(*solo, *av, {audio[0]}, false);  // warm-up
    const double t_solo = render_sessions(*solo, *av, audio, false);
    const double t_batched = render_sessions(*batched, *av, audio, true, &frames);
    std::size_t total = 0;
    for (const auto& f : frames) total += f.size();
    const auto stats = batched->stats();
    const double mean_batch = stats.batches ? static_cast<double>(stats.completed) / stats.batches : 0;

    std::fprintf(stderr, "\n%-34s %10s %10s\n", "renderer, all sessions", "seconds", "frames/s");
    std::fprintf(stderr, "%-34s %10.2f %10.2f\n", "one after the other, batch 1", t_solo, total / t_solo);
    std::fprintf(stderr, "%-34s %10.2f %10.2f\n", "concurrent, shared executor", t_batched, total / t_batched);
    std::fprintf(stderr, "batched / solo throughput: %.2fx (%d sessions x %zu frames, mean batch %.1f)\n",
                 t_solo / t_batched, args.sessions, frames[0].size(), mean_batch);

    if (!args.dump.empty()) {
      std::filesystem::create_directories(args.dump);
      for (std::size_t n = 0; n < frames[0].size(); ++n) {
        const auto& f = frames[0][n];
        cv::Mat rgb(f.height, f.width, CV_8UC3, const_cast<std::uint8_t*>(f.data.data())), bgr;
        cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
        char name[32];
        std::snprintf(name, sizeof name, "/frame_%04zu.png", n);
        cv::imwrite(args.dump + name, bgr);
      }
    }

    const nlohmann::json j{{"bench", "wav2lip"},
                           {"network_fps", network},
                           {"network_batch16_vs_1", network["16"].get<double>() / network["1"].get<double>()},
                           {"sessions", args.sessions},
                           {"frames", total},
                           {"solo_seconds", t_solo},
                           {"batched_seconds", t_batched},
                           {"batched_vs_solo", t_solo / t_batched},
                           {"mean_batch", mean_batch},
                           {"torch_threads", args.threads}};
    std::printf("%s\n", j.dump().c_str());
    if (!temp.empty()) std::filesystem::remove(temp);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_wav2lip: %s\n", e.what());
    return 1;
  }
  return 0;
}
