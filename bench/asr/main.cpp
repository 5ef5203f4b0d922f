// ASR stage throughput: the same N clips (real recordings) recognised one at a time, then all
// N submitted at once, through the AsrStage the server uses (Silero VAD segments, the
// BatchingExecutor, the backend). Workers as the server uses them: 2 for pocketsphinx (its
// decoders run side by side), 1 for wav2vec2 (one batch at a time owns torch's thread pool),
// 4 for whisper (batches in flight feeding its shared decode loop). The ratio of the two wall
// times is the batching/concurrency gain (throughput_ratio = one/all; batch_over_sequential =
// all/one). Backends: pocketsphinx (Debian en-us model), wav2vec2 (a real model directory, or
// random weights of the wav2vec2-base size when none is given: same compute, no text) and
// whisper (the Hugging Face model directory the server loads, models/whisper-tiny-en).
//
// Whisper also gets: the resident memory of the loaded model (VmRSS after load minus before),
// a lone 5 s utterance (a slice of --lone-clip) transcribed directly and through the stage
// (p50 of --lone-runs), the decoder's tokens/s, steps and largest step batch at 1 and at N
// concurrent requests and the encoder's share of the model time (WhisperAsr::stats()), and,
// when node and bench/asr/ort/node_modules are there (cd bench/asr/ort && npm ci
// --ignore-scripts), onnxruntime on the original int8 end-to-end graph for the same 5 s clip
// (bench/asr/ort_whisper.mjs).
// Prints one JSON object on stdout and a table on stderr.
//
//   bench_asr [--backend pocketsphinx|wav2vec2|whisper|both|all] [--clips 16] [--max-seconds 8]
//             [--decoders 2] [--wav2vec2-dir DIR] [--no-vad] [--speech-dir DIR]
//             [--w2v-workers 1] [--w2v-threads 0] [--max-batch-seconds 0]
//             [--whisper-dir DIR] [--whisper-workers 4] [--whisper-threads CORES]
//             [--whisper-encoder-dtype auto|float32|bfloat16] [--max-batch 8]
//             [--lone-clip jfk.wav] [--lone-seconds 5] [--lone-runs 5] [--no-ort]
// --backend: both = pocketsphinx + wav2vec2 (as before whisper existed); all (the default) =
// the three. --whisper-dir: default $TALKSERVE_MODELS_DIR/whisper-tiny-en, else the build's
// models directory.

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "talkserve/media/audio.hpp"
#include "talkserve/sched/clock.hpp"
#include "talkserve/speech/asr_stage.hpp"
#include "talkserve/speech/pocketsphinx_backend.hpp"
#include "talkserve/speech/vad.hpp"
#include "talkserve/speech/wav2vec2.hpp"
#include "talkserve/speech/whisper.hpp"

namespace fs = std::filesystem;
using namespace talkserve;
using Clock = std::chrono::steady_clock;

namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

struct Args {
  std::string backend = "all";
  std::size_t clips = 16;
  double max_seconds = 8;
  int decoders = 2;
  std::string wav2vec2_dir;
  bool vad = true;
  int w2v_workers = 1;  // wav2vec2 executor workers
  int w2v_threads = 0;  // wav2vec2 intra-op threads (0 = torch's default, 1 with Debian's libtorch)
  double max_batch_seconds = 0;  // asr.max_batch_seconds: cap on seconds of audio per batch (0 = off)
  std::string speech_dir = TALKSERVE_BENCH_SPEECH_DIR;
  std::string models_dir = env_or("TALKSERVE_MODELS_DIR", TALKSERVE_BENCH_MODELS_DIR);
  std::string whisper_dir;   // default models_dir/whisper-tiny-en
  int whisper_workers = 4;   // asr.workers (the server's default)
  // Torch and OpenBLAS intra-op threads, process-wide. Default: every core, which is what the
  // default server runs whisper with (llm.threads = 0 sets both pools to all cores for the
  // whole process). 0 = leave both libraries' defaults (asr.threads = 0 in a server without
  // the LLM; with Debian's libtorch each thread then starts OpenMP teams of all cores).
  int whisper_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::string whisper_encoder_dtype = "auto";  // asr.whisper_encoder_dtype
  std::size_t max_batch = 8;  // asr.max_batch: segments per executor batch (every backend)
  std::string lone_clip = "jfk.wav";  // in speech_dir, or a path
  double lone_seconds = 5;
  int lone_runs = 5;
  bool ort = true;
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
    else if (k == "--whisper-dir") a.whisper_dir = next();
    else if (k == "--whisper-workers") a.whisper_workers = std::stoi(next());
    else if (k == "--whisper-threads") a.whisper_threads = std::stoi(next());
    else if (k == "--whisper-encoder-dtype") a.whisper_encoder_dtype = next();
    else if (k == "--max-batch") a.max_batch = std::stoul(next());
    else if (k == "--lone-clip") a.lone_clip = next();
    else if (k == "--lone-seconds") a.lone_seconds = std::stod(next());
    else if (k == "--lone-runs") a.lone_runs = std::stoi(next());
    else if (k == "--no-ort") a.ort = false;
    else {
      std::fprintf(stderr, "unknown argument %s\n", k.c_str());
      std::exit(2);
    }
  }
  if (a.whisper_dir.empty()) a.whisper_dir = a.models_dir + "/whisper-tiny-en";
  const std::vector<std::string> known{"pocketsphinx", "wav2vec2", "whisper", "both", "all"};
  if (std::find(known.begin(), known.end(), a.backend) == known.end()) {
    std::fprintf(stderr, "unknown backend %s\n", a.backend.c_str());
    std::exit(2);
  }
  return a;
}

bool wants(const Args& a, const std::string& backend) {
  if (a.backend == backend || a.backend == "all") return true;
  return a.backend == "both" && (backend == "pocketsphinx" || backend == "wav2vec2");
}

std::vector<float> decode_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  return media::decode_audio({reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()})
      .samples;
}

std::vector<std::vector<float>> load_clips(const Args& a) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(a.speech_dir)) {
    if (e.path().extension() == ".wav") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) throw std::runtime_error("no .wav files in " + a.speech_dir);
  std::vector<std::vector<float>> decoded;
  for (const auto& f : files) decoded.push_back(decode_file(f));
  // Clip i is window i / files of file i % files, so that more clips than files are still
  // different audio: the later windows of the longer recordings (from the longest down; a
  // window needs at least 1 s of audio).
  const auto cap = static_cast<std::size_t>(a.max_seconds * speech::kAsrSampleRate);
  std::vector<std::size_t> by_length(files.size());
  for (std::size_t i = 0; i < files.size(); ++i) by_length[i] = i;
  std::stable_sort(by_length.begin(), by_length.end(),
                   [&](std::size_t x, std::size_t y) { return decoded[x].size() > decoded[y].size(); });
  std::vector<std::pair<std::size_t, std::size_t>> windows;  // file, first sample
  for (std::size_t i = 0; i < files.size(); ++i) windows.emplace_back(i, 0);
  for (std::size_t w = 1; windows.size() < a.clips && w < 64; ++w) {
    for (std::size_t f : by_length) {
      if (decoded[f].size() >= w * cap + speech::kAsrSampleRate) windows.emplace_back(f, w * cap);
    }
  }
  std::vector<std::vector<float>> clips;
  for (std::size_t i = 0; i < a.clips; ++i) {
    const auto& [f, first] = windows[i % windows.size()];
    const auto& s = decoded[f];
    clips.emplace_back(s.begin() + static_cast<std::ptrdiff_t>(first),
                       s.begin() + static_cast<std::ptrdiff_t>(std::min(s.size(), first + cap)));
  }
  return clips;
}

struct Run {
  double seconds = 0;
  std::size_t failures = 0;
  std::vector<std::string> texts;  // one per clip, in order
};

// Submits clips [0, n) `at_once` at a time and waits for each group.
Run run(speech::AsrStage& stage, const std::vector<std::shared_ptr<const std::vector<float>>>& audio,
        const std::vector<std::vector<speech::SpeechRegion>>& segments, std::size_t at_once) {
  Run r;
  r.texts.resize(audio.size());
  const auto t0 = Clock::now();
  for (std::size_t first = 0; first < audio.size(); first += at_once) {
    std::vector<std::future<bool>> done;
    for (std::size_t i = first; i < std::min(audio.size(), first + at_once); ++i) {
      auto p = std::make_shared<std::promise<bool>>();
      done.push_back(p->get_future());
      std::string* text = &r.texts[i];
      auto t = stage.transcribe(audio[i], segments[i], "en", 1,
                                [p, text](sched::Expected<speech::Transcript> res) {
                                  if (res) *text = res->text;
                                  p->set_value(res.has_value());
                                });
      if (!t) p->set_value(false);
    }
    for (auto& f : done) r.failures += f.get() ? 0 : 1;
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return r;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// The whisper-only figures: the backend (owned by the stage) and the lone utterance.
struct WhisperProbe {
  speech::WhisperAsr* asr = nullptr;
  std::vector<float> lone;  // the lone utterance
  int lone_runs = 5;
};

// The decoder counters over one phase (the difference of two stats() snapshots).
nlohmann::json decoder_phase(const speech::WhisperAsr::Stats& before,
                             const speech::WhisperAsr::Stats& after, double wall_seconds,
                             std::size_t concurrent) {
  const double enc = after.encoder_seconds - before.encoder_seconds;
  const double dec = after.decoder_seconds - before.decoder_seconds;
  const auto tokens = after.tokens - before.tokens;
  const auto steps = after.steps - before.steps;
  return {{"concurrent_requests", concurrent},
          {"tokens", tokens},
          {"steps", steps},
          {"tokens_per_step", steps ? static_cast<double>(tokens) / steps : 0.0},
          {"max_rows_since_load", after.max_rows},
          {"decoder_seconds", dec},
          {"encoder_seconds", enc},
          {"wall_seconds", wall_seconds},
          {"decoder_tokens_per_second", dec > 0 ? tokens / dec : 0.0},
          {"encoder_share", enc + dec > 0 ? enc / (enc + dec) : 0.0},
          {"encoder_share_of_wall", wall_seconds > 0 ? enc / wall_seconds : 0.0}};
}

nlohmann::json bench_backend(const std::string& name, std::unique_ptr<speech::AsrBackend> backend,
                             std::shared_ptr<const speech::VadModel> vad,
                             const std::vector<std::vector<float>>& clips, std::size_t max_batch,
                             std::size_t workers, double max_batch_seconds,
                             const WhisperProbe* whisper = nullptr) {
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

  nlohmann::json lone;
  if (whisper) {
    // A lone utterance: straight into the backend (as onnxruntime gets it), then through the
    // stage (VAD, batching window, decode loop) as an upload of it would go.
    std::vector<double> direct, staged;
    std::string direct_text, staged_text;
    for (int r = 0; r < whisper->lone_runs; ++r) {
      std::vector<speech::AsrInput> batch(1);
      batch[0].samples = whisper->lone;
      batch[0].language = "en";
      const auto t0 = Clock::now();
      direct_text = whisper->asr->transcribe_batch(batch).at(0).text;
      direct.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    }
    const auto lone_audio = std::make_shared<const std::vector<float>>(whisper->lone);
    const auto lone_segments = stage.segment(whisper->lone);
    for (int r = 0; r < whisper->lone_runs; ++r) {
      const Run one = run(stage, {lone_audio}, {lone_segments}, 1);
      staged.push_back(one.seconds);
      staged_text = one.texts.at(0);
    }
    lone = {{"audio_seconds", whisper->lone.size() / static_cast<double>(speech::kAsrSampleRate)},
            {"runs", whisper->lone_runs},
            {"direct_p50_seconds", median(direct)},
            {"direct_min_seconds", *std::min_element(direct.begin(), direct.end())},
            {"stage_p50_seconds", median(staged)},
            {"stage_min_seconds", *std::min_element(staged.begin(), staged.end())},
            {"text", direct_text},
            {"stage_text", staged_text}};
  }

  std::optional<speech::WhisperAsr::Stats> s0, s1, s2;
  if (whisper) s0 = whisper->asr->stats();
  const Run one = run(stage, audio, segments, 1);
  if (whisper) s1 = whisper->asr->stats();
  const Run all = run(stage, audio, segments, audio.size());
  if (whisper) s2 = whisper->asr->stats();
  std::size_t same_text = 0;
  for (std::size_t i = 0; i < clips.size(); ++i) same_text += one.texts[i] == all.texts[i] ? 1 : 0;
  nlohmann::json j{{"backend", name},
                   {"workers", workers},
                   {"max_batch", max_batch},
                   {"max_batch_seconds", max_batch_seconds},
                   {"clips", clips.size()},
                   {"segments", segment_count},
                   {"audio_seconds", audio_seconds},
                   {"one_at_a_time_seconds", one.seconds},
                   {"all_at_once_seconds", all.seconds},
                   {"one_at_a_time_rtfx", audio_seconds / one.seconds},
                   {"all_at_once_rtfx", audio_seconds / all.seconds},
                   {"throughput_ratio", one.seconds / all.seconds},
                   {"batch_over_sequential", all.seconds / one.seconds},
                   {"same_text_both_ways", same_text},
                   {"failures", one.failures + all.failures}};
  std::fprintf(stderr, "%-14s %5zu clips %5zu segs %7.1f s audio | one at a time %7.2f s (%5.1fx RT) | "
               "%zu at once %7.2f s (%5.1fx RT) | ratio %.2fx (all/one %.2f)\n",
               name.c_str(), clips.size(), segment_count, audio_seconds, one.seconds,
               audio_seconds / one.seconds, clips.size(), all.seconds, audio_seconds / all.seconds,
               one.seconds / all.seconds, all.seconds / one.seconds);
  if (whisper) {
    j["lone_utterance"] = lone;
    j["decoder"] = {decoder_phase(*s0, *s1, one.seconds, 1),
                    decoder_phase(*s1, *s2, all.seconds, clips.size())};
    std::fprintf(stderr, "%-14s lone %.1f s utterance: direct p50 %.3f s, through the stage p50 %.3f s: \"%s\"\n",
                 "", lone["audio_seconds"].get<double>(), lone["direct_p50_seconds"].get<double>(),
                 lone["stage_p50_seconds"].get<double>(), lone["text"].get<std::string>().c_str());
    for (const auto& d : j["decoder"]) {
      std::fprintf(stderr, "%-14s %2zu at once: decoder %6.1f tokens/s (%zu tokens, %zu steps, %.2f tokens/step, "
                   "max rows %zu) | encoder %.2f s = %.0f%% of model time (%.0f%% of wall)\n",
                   "", d["concurrent_requests"].get<std::size_t>(),
                   d["decoder_tokens_per_second"].get<double>(), d["tokens"].get<std::size_t>(),
                   d["steps"].get<std::size_t>(), d["tokens_per_step"].get<double>(),
                   d["max_rows_since_load"].get<std::size_t>(), d["encoder_seconds"].get<double>(),
                   d["encoder_share"].get<double>() * 100, d["encoder_share_of_wall"].get<double>() * 100);
    }
  }
  return j;
}

// VmRSS of this process in bytes (0 when /proc is not there).
double rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) * 1024.0;
  }
  return 0;
}

// Writes PCM16 mono 16 kHz.
void write_wav(const fs::path& path, const std::vector<float>& samples) {
  std::ofstream out(path, std::ios::binary);
  auto u32 = [&](std::uint32_t v) { out.write(reinterpret_cast<const char*>(&v), 4); };
  auto u16 = [&](std::uint16_t v) { out.write(reinterpret_cast<const char*>(&v), 2); };
  const auto bytes = static_cast<std::uint32_t>(samples.size() * 2);
  out.write("RIFF", 4);
  u32(36 + bytes);
  out.write("WAVEfmt ", 8);
  u32(16);
  u16(1);
  u16(1);
  u32(speech::kAsrSampleRate);
  u32(speech::kAsrSampleRate * 2);
  u16(2);
  u16(16);
  out.write("data", 4);
  u32(bytes);
  for (float f : samples) {
    const float c = std::clamp(f, -1.0f, 1.0f);
    u16(static_cast<std::uint16_t>(static_cast<std::int16_t>(std::lround(c * 32767.0f))));
  }
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// onnxruntime on the original int8 graph for the lone utterance (bench/asr/ort_whisper.mjs),
// once per intra-op thread count. Null when node or the npm folder is missing.
nlohmann::json bench_ort(const Args& a, const std::vector<float>& lone) {
  const fs::path script = fs::path(TALKSERVE_BENCH_SOURCE_DIR) / "bench/asr/ort_whisper.mjs";
  const fs::path module = fs::path(TALKSERVE_BENCH_SOURCE_DIR) / "bench/asr/ort/node_modules/onnxruntime-node";
  if (!fs::exists(module) || std::system("command -v node >/dev/null 2>&1") != 0) {
    std::fprintf(stderr, "%-14s onnxruntime: skipped (needs node and: cd bench/asr/ort && npm ci --ignore-scripts)\n", "");
    return nullptr;
  }
  const fs::path wav = fs::temp_directory_path() / ("talkserve-bench-asr-lone-" + std::to_string(::getpid()) + ".wav");
  write_wav(wav, lone);
  nlohmann::json out = nlohmann::json::array();
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  std::vector<unsigned> thread_counts{1};
  if (cores > 1) thread_counts.push_back(cores);
  for (unsigned threads : thread_counts) {
    const std::string cmd = "node " + shell_quote(script.string()) + " --wav " + shell_quote(wav.string()) +
                            " --seconds " + std::to_string(a.lone_seconds) + " --runs " +
                            std::to_string(a.lone_runs) + " --threads " + std::to_string(threads) +
                            " --vocab " + shell_quote(a.whisper_dir + "/vocab.json");
    FILE* p = ::popen(cmd.c_str(), "r");
    std::string text;
    if (p) {
      char buf[4096];
      std::size_t n;
      while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
      if (::pclose(p) != 0) text.clear();
    }
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      std::fprintf(stderr, "%-14s onnxruntime (%u threads): failed: %s\n", "", threads, cmd.c_str());
      continue;
    }
    j["threads"] = threads;
    std::fprintf(stderr, "%-14s onnxruntime %s, %u thread%s, original int8 graph (cut before BpeDecoder): "
                 "lone %.1f s utterance p50 %.3f s (load %.2f s): \"%s\"\n",
                 "", j.value("runtime", "").c_str(), threads, threads == 1 ? "" : "s",
                 j.value("clip_seconds", 0.0), j.value("p50_seconds", 0.0), j.value("load_seconds", 0.0),
                 j.value("text", "").c_str());
    out.push_back(std::move(j));
  }
  fs::remove(wav);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse_args(argc, argv);
  try {
    const auto clips = load_clips(args);
    std::shared_ptr<const speech::VadModel> vad;
    if (args.vad) vad = speech::load_silero_vad(args.models_dir + "/silero_vad/silero_vad.jit");
    nlohmann::json results = nlohmann::json::array();
    if (wants(args, "pocketsphinx")) {
      speech::PocketsphinxConfig pc;
      pc.decoders = args.decoders;
      results.push_back(bench_backend("pocketsphinx", speech::make_pocketsphinx_backend(pc), vad,
                                      clips, args.max_batch, 2, args.max_batch_seconds));
    }
    if (wants(args, "wav2vec2")) {
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
                                      speech::Wav2Vec2Asr::load(o), vad, clips, args.max_batch,
                                      static_cast<std::size_t>(args.w2v_workers), args.max_batch_seconds));
      if (!tmp.empty()) fs::remove_all(tmp);
    }
    if (wants(args, "whisper")) {
      WhisperProbe probe;
      fs::path lone_path = args.lone_clip;
      if (!lone_path.has_parent_path()) lone_path = fs::path(args.speech_dir) / lone_path;
      probe.lone = decode_file(lone_path);
      probe.lone.resize(std::min(probe.lone.size(),
                                 static_cast<std::size_t>(args.lone_seconds * speech::kAsrSampleRate)));
      probe.lone_runs = std::max(1, args.lone_runs);
      speech::WhisperOptions o;  // as the server's defaults (asr.whisper_*)
      o.path = args.whisper_dir;
      o.name = fs::path(args.whisper_dir).filename().string();
      o.threads = args.whisper_threads;
      o.encoder_dtype = args.whisper_encoder_dtype;
      const double rss_before = rss_bytes();
      const auto t0 = Clock::now();
      auto asr = speech::WhisperAsr::load(o);
      const double load_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
      const double rss_after = rss_bytes();
      probe.asr = asr.get();
      std::fprintf(stderr, "%-14s loaded %s in %.2f s: resident memory +%.1f MiB (VmRSS %.1f -> %.1f MiB)\n",
                   "whisper", args.whisper_dir.c_str(), load_seconds, (rss_after - rss_before) / 1048576.0,
                   rss_before / 1048576.0, rss_after / 1048576.0);
      auto j = bench_backend(o.name, std::move(asr), vad, clips, args.max_batch,
                             static_cast<std::size_t>(args.whisper_workers), args.max_batch_seconds, &probe);
      j["load_seconds"] = load_seconds;
      j["model_rss_mib"] = (rss_after - rss_before) / 1048576.0;
      j["threads"] = args.whisper_threads;
      j["encoder_dtype"] = args.whisper_encoder_dtype;
      if (args.ort) j["onnxruntime"] = bench_ort(args, probe.lone);
      results.push_back(std::move(j));
    }
    std::printf("%s\n", nlohmann::json{{"bench", "asr"}, {"results", results}}.dump().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_asr: %s\n", e.what());
    return 1;
  }
  return 0;
}
