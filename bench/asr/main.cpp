// ASR stage throughput: the same N clips (real recordings) recognised one at a time, then all
// N submitted at once, through the AsrStage the server uses (Silero VAD segments, the
// BatchingExecutor, the backend). Workers as the server uses them: 2 for pocketsphinx (its
// decoders run side by side), 1 for wav2vec2 (one batch at a time owns torch's thread pool). The ratio of the two wall times is the batching/concurrency
// gain. Backends: pocketsphinx (Debian en-us model) and wav2vec2 (a real model directory, or
// random weights of the wav2vec2-base size when none is given: same compute, no text).
// Prints one JSON object on stdout and a table on stderr.
//
//   bench_asr [--backend pocketsphinx|wav2vec2|both] [--clips 16] [--max-seconds 8]
//             [--decoders 2] [--wav2vec2-dir DIR] [--no-vad] [--speech-dir DIR]
//             [--w2v-workers 1] [--w2v-threads 0] [--max-batch-seconds 0]

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "talkserve/media/audio.hpp"
#include "talkserve/sched/clock.hpp"
#include "talkserve/speech/asr_stage.hpp"
#include "talkserve/speech/pocketsphinx_backend.hpp"
#include "talkserve/speech/vad.hpp"
#include "talkserve/speech/wav2vec2.hpp"

namespace fs = std::filesystem;
using namespace talkserve;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
  std::string backend = "both";
  std::size_t clips = 16;
  double max_seconds = 8;
  int decoders = 2;
  std::string wav2vec2_dir;
  bool vad = true;
  int w2v_workers = 1;  // wav2vec2 executor workers
  int w2v_threads = 0;  // wav2vec2 intra-op threads (0 = torch's default, 1 with Debian's libtorch)
  double max_batch_seconds = 0;  // asr.max_batch_seconds: cap on seconds of audio per batch (0 = off)
  std::string speech_dir = TALKSERVE_BENCH_SPEECH_DIR;
  std::string models_dir = TALKSERVE_BENCH_MODELS_DIR;
};

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "missing value for %s\n", k.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (k == "--backend") a.backend = next();
    else if (k == "--clips") a.clips = std::stoul(next());
    else if (k == "--max-seconds") a.max_seconds = std::stod(next());
    else if (k == "--decoders") a.decoders = std::stoi(next());
    else if (k == "--wav2vec2-dir") a.wav2vec2_dir = next();
    else if (k == "--no-vad") a.vad = false;
    else if (k == "--w2v-workers") a.w2v_workers = std::stoi(next());
    else if (k == "--w2v-threads") a.w2v_threads = std::stoi(next());
    else if (k == "--max-batch-seconds") a.max_batch_seconds = std::stod(next());
    else if (k == "--speech-dir") a.speech_dir = next();
    else {
      std::fprintf(stderr, "unknown argument %s\n", k.c_str());
      std::exit(2);
    }
  }
  return a;
}

std::vector<std::vector<float>> load_clips(const Args& a) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(a.speech_dir)) {
    if (e.path().extension() == ".wav") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) throw std::runtime_error("no .wav files in " + a.speech_dir);
  std::vector<std::vector<float>> clips;
  for (std::size_t i = 0; i < a.clips; ++i) {
    std::ifstream in(files[i % files.size()], std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    auto d = media::decode_audio({reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()});
    const auto cap = static_cast<std::size_t>(a.max_seconds * speech::kAsrSampleRate);
    if (d.samples.size() > cap) d.samples.resize(cap);
    clips.push_back(std::move(d.samples));
  }
  return clips;
}

struct Run {
  double seconds = 0;
  std::size_t failures = 0;
};

// Submits clips [0, n) `at_once` at a time and waits for each group.
Run run(speech::AsrStage& stage, const std::vector<std::shared_ptr<const std::vector<float>>>& audio,
        const std::vector<std::vector<speech::SpeechRegion>>& segments, std::size_t at_once) {
  Run r;
  const auto t0 = Clock::now();
  for (std::size_t first = 0; first < audio.size(); first += at_once) {
    std::vector<std::future<bool>> done;
    for (std::size_t i = first; i < std::min(audio.size(), first + at_once); ++i) {
      auto p = std::make_shared<std::promise<bool>>();
      done.push_back(p->get_future());
      auto t = stage.transcribe(audio[i], segments[i], "en", 1,
                                [p](sched::Expected<speech::Transcript> res) { p->set_value(res.has_value()); });
      if (!t) p->set_value(false);
    }
    for (auto& f : done) r.failures += f.get() ? 0 : 1;
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return r;
}

nlohmann::json bench_backend(const std::string& name, std::unique_ptr<speech::AsrBackend> backend,
                             std::shared_ptr<const speech::VadModel> vad,
                             const std::vector<std::vector<float>>& clips, std::size_t max_batch,
                             std::size_t workers, double max_batch_seconds) {
  speech::AsrStageConfig cfg;
  cfg.batching.name = "asr";
  cfg.batching.max_batch = max_batch;
  cfg.batching.max_queue = 4096;
  cfg.batching.max_wait = std::chrono::milliseconds(20);
  cfg.batching.num_workers = workers;
  cfg.batching.max_batch_cost = max_batch_seconds;
  speech::AsrStage stage(std::move(backend), std::move(vad), cfg, sched::steady_clock(), nullptr);
  std::vector<std::shared_ptr<const std::vector<float>>> audio;
  std::vector<std::vector<speech::SpeechRegion>> segments;
  double audio_seconds = 0;
  std::size_t segment_count = 0;
  for (const auto& c : clips) {
    audio.push_back(std::make_shared<const std::vector<float>>(c));
    segments.push_back(stage.segment(c));
    segment_count += segments.back().size();
    audio_seconds += c.size() / static_cast<double>(speech::kAsrSampleRate);
  }
  run(stage, {audio.begin(), audio.begin() + 1}, {segments.begin(), segments.begin() + 1}, 1);  // warm-up
  const Run one = run(stage, audio, segments, 1);
  const Run all = run(stage, audio, segments, audio.size());
  nlohmann::json j{{"backend", name},
                   {"max_batch_seconds", max_batch_seconds},
                   {"clips", clips.size()},
                   {"segments", segment_count},
                   {"audio_seconds", audio_seconds},
                   {"one_at_a_time_seconds", one.seconds},
                   {"all_at_once_seconds", all.seconds},
                   {"one_at_a_time_rtfx", audio_seconds / one.seconds},
                   {"all_at_once_rtfx", audio_seconds / all.seconds},
                   {"throughput_ratio", one.seconds / all.seconds},
                   {"failures", one.failures + all.failures}};
  std::fprintf(stderr, "%-14s %5zu clips %5zu segs %7.1f s audio | one at a time %7.2f s (%5.1fx RT) | "
               "%zu at once %7.2f s (%5.1fx RT) | ratio %.2fx\n",
               name.c_str(), clips.size(), segment_count, audio_seconds, one.seconds,
               audio_seconds / one.seconds, clips.size(), all.seconds, audio_seconds / all.seconds,
               one.seconds / all.seconds);
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse_args(argc, argv);
  try {
    const auto clips = load_clips(args);
    std::shared_ptr<const speech::VadModel> vad;
    if (args.vad) vad = speech::load_silero_vad(args.models_dir + "/silero_vad/silero_vad.jit");
    nlohmann::json results = nlohmann::json::array();
    if (args.backend == "pocketsphinx" || args.backend == "both") {
      speech::PocketsphinxConfig pc;
      pc.decoders = args.decoders;
      results.push_back(bench_backend("pocketsphinx", speech::make_pocketsphinx_backend(pc), vad,
                                      clips, 8, 2, args.max_batch_seconds));
    }
    if (args.backend == "wav2vec2" || args.backend == "both") {
      std::string dir = args.wav2vec2_dir;
      fs::path tmp;
      if (dir.empty()) {
        tmp = fs::temp_directory_path() / ("talkserve-bench-w2v2-" + std::to_string(::getpid()));
        fs::create_directories(tmp);
        speech::write_random_wav2vec2(tmp.string(), speech::Wav2Vec2RandomSpec::base(), 7);
        dir = tmp.string();
      }
      speech::Wav2Vec2Options o;
      o.path = dir;
      o.threads = args.w2v_threads;
      results.push_back(bench_backend(args.wav2vec2_dir.empty() ? "wav2vec2-base(random)" : "wav2vec2",
                                      speech::Wav2Vec2Asr::load(o), vad, clips, 8,
                                      static_cast<std::size_t>(args.w2v_workers), args.max_batch_seconds));
      if (!tmp.empty()) fs::remove_all(tmp);
    }
    std::printf("%s\n", nlohmann::json{{"bench", "asr"}, {"results", results}}.dump().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_asr: %s\n", e.what());
    return 1;
  }
  return 0;
}
