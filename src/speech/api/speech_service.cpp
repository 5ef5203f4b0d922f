#include "talkserve/speech/speech_service.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/thread_pool.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <filesystem>
#include <mutex>

#include "speech_handler.hpp"
#include "talkserve/net/api_error.hpp"
#include "talkserve/net/router.hpp"
#include "talkserve/sched/clock.hpp"
#include "talkserve/speech/asr_stage.hpp"
#include "talkserve/speech/pocketsphinx_backend.hpp"
#include "talkserve/speech/espeak_backend.hpp"
#include "talkserve/speech/flite_backend.hpp"
#include "talkserve/speech/tts_stage.hpp"
#include "talkserve/speech/vad.hpp"
#include "talkserve/speech/wav2vec2.hpp"
#include "talkserve/speech/whisper.hpp"
#include "transcription_handler.hpp"

namespace talkserve::speech {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;

std::string resolve(const std::string& models_dir, const std::string& p) {
  if (p.empty() || std::filesystem::path(p).is_absolute()) return p;
  return (std::filesystem::path(models_dir) / p).string();
}

net::RouteOptions route(std::string name, std::optional<std::size_t> body_limit = {}) {
  net::RouteOptions o;
  o.name = std::move(name);
  o.body_limit = body_limit;
  return o;
}

class SpeechService final : public app::Service, public SpeechStages {
 public:
  SpeechService(const app::AppConfig& config, obs::MetricsRegistry& metrics)
      : asr_cfg_(config.asr), tts_cfg_(config.tts), models_dir_(config.server.models_dir),
        metrics_(metrics) {}

  ~SpeechService() override { stop(); }

  std::string name() const override { return "speech"; }

  AsrStage* asr_stage() override { return ready() ? asr_.get() : nullptr; }
  TtsStage* tts_stage() override { return ready() ? tts_.get() : nullptr; }

  void register_routes(net::Router& router) override {
    if (asr_cfg_.enabled) {
      router.add(http::verb::post, "/v1/audio/transcriptions",
                 [this](net::HttpExchange& ex) { return transcribe(ex); },
                 route("/v1/audio/transcriptions",
                       static_cast<std::size_t>(asr_cfg_.max_upload_mb) << 20));
    }
    if (tts_cfg_.enabled) {
      router.add(http::verb::post, "/v1/audio/speech",
                 [this](net::HttpExchange& ex) { return speak(ex); },
                 route("/v1/audio/speech", 1 << 20));
      router.add(http::verb::get, "/v1/audio/voices",
                 [this](net::HttpExchange& ex) { return list_voices(ex); },
                 route("/v1/audio/voices"));
    }
  }

  void start() override {
    if (asr_cfg_.enabled) start_asr();
    if (tts_cfg_.enabled) start_tts();
    ready_.store(true);
  }

  bool ready() const override { return ready_.load(); }

  void drain() override {
    if (asr_) asr_->drain();
    if (tts_) tts_->drain();
  }

  void stop() override {
    std::lock_guard lock(stop_mutex_);
    ready_.store(false);
    if (asr_) asr_->stop();
    if (tts_) tts_->stop();
    media_pool_.join();
  }

 private:
  void start_asr() {
    std::unique_ptr<AsrBackend> backend;
    if (asr_cfg_.backend == "whisper") {
      WhisperOptions o;
      o.path = resolve(models_dir_, asr_cfg_.whisper_model);
      // The model's directory name; OpenAI clients' "whisper-1" is accepted too.
      o.name = std::filesystem::path(o.path).filename().string();
      o.device = asr_cfg_.device;
      o.threads = asr_cfg_.threads;
      o.beam_size = asr_cfg_.whisper_beam_size;
      o.encoder_dtype = asr_cfg_.whisper_encoder_dtype;
      o.word_timestamps = asr_cfg_.whisper_word_timestamps;
      o.max_active = asr_cfg_.whisper_max_active;
      backend = WhisperAsr::load(o);
    } else if (asr_cfg_.backend == "wav2vec2") {
      Wav2Vec2Options o;
      o.path = resolve(models_dir_, asr_cfg_.wav2vec2_model);
      o.device = asr_cfg_.device;
      o.threads = asr_cfg_.threads;
      backend = Wav2Vec2Asr::load(o);
    } else {
      PocketsphinxConfig pc;
      pc.hmm = asr_cfg_.pocketsphinx_hmm;
      pc.lm = asr_cfg_.pocketsphinx_lm;
      pc.dict = asr_cfg_.pocketsphinx_dict;
      pc.decoders = asr_cfg_.decoders;
      backend = make_pocketsphinx_backend(pc);
    }
    std::shared_ptr<const VadModel> vad;
    if (asr_cfg_.vad) vad = load_silero_vad(resolve(models_dir_, asr_cfg_.vad_model));

    AsrStageConfig sc;
    sc.batching.name = "asr";
    sc.batching.max_batch = static_cast<std::size_t>(asr_cfg_.max_batch);
    sc.batching.max_queue = static_cast<std::size_t>(asr_cfg_.max_queue);
    sc.batching.max_queue_delay = std::chrono::milliseconds(asr_cfg_.max_queue_delay_ms);
    sc.batching.max_wait = std::chrono::milliseconds(asr_cfg_.max_wait_ms);
    sc.batching.max_batch_cost = asr_cfg_.max_batch_seconds;
    // pocketsphinx: one worker per resident decoder set. whisper: workers are batches in
    // flight: each encodes its batch (one encoder forward at a time) and then waits while its
    // segments decode in the shared loop, so more workers let more segments join the loop.
    // wav2vec2: workers run batches of the
    // one loaded model at once, each on torch's intra-op pool (asr.threads, process-wide), so
    // workers x threads should not exceed the cores: on 2 cores, 2 workers of 1 thread give
    // 1.8-2.0x the throughput of one request at a time, 1 worker of 2 threads 1.1x
    // (bench/asr, docs/speech.md).
    sc.batching.num_workers = static_cast<std::size_t>(asr_cfg_.workers);
    sc.vad.threshold = static_cast<float>(asr_cfg_.vad_threshold);
    sc.vad.neg_threshold = std::max(0.01f, sc.vad.threshold - 0.15f);
    sc.vad.min_silence_ms = asr_cfg_.vad_min_silence_ms;
    sc.vad.min_speech_ms = asr_cfg_.vad_min_speech_ms;
    sc.vad.speech_pad_ms = asr_cfg_.vad_speech_pad_ms;
    sc.merge_gap_seconds = asr_cfg_.vad_merge_gap_ms / 1000.0;
    sc.max_segment_seconds = asr_cfg_.max_segment_seconds;
    const std::string backend_name = backend->name();
    asr_ = std::make_unique<AsrStage>(std::move(backend), std::move(vad), sc,
                                      sched::steady_clock(), &metrics_);
    transcription_ = std::make_unique<api::TranscriptionHandler>(
        *asr_, media_pool_,
        api::TranscriptionLimits{asr_cfg_.max_audio_seconds,
                                 std::chrono::milliseconds(asr_cfg_.max_queue_delay_ms)},
        &metrics_);
    spdlog::info("asr: backend {}{}, VAD {}", backend_name,
                 asr_cfg_.backend == "pocketsphinx"
                     ? " with " + std::to_string(asr_cfg_.decoders) + " decoders"
                     : std::string(),
                 asr_cfg_.vad ? "on" : "off");
  }

  void start_tts() {
    std::unique_ptr<TtsBackend> backend;
    if (tts_cfg_.backend == "flite") {
      backend = FliteBackend::create();
    } else {
      backend = EspeakBackend::create();
    }
    sched::BatchingConfig bc;
    bc.name = "tts";
    bc.max_batch = 1;  // CPU synthesisers gain nothing from batching; the queue orders work
    bc.max_queue = static_cast<std::size_t>(tts_cfg_.max_queue);
    bc.max_wait = std::chrono::milliseconds(0);
    bc.num_workers = static_cast<std::size_t>(tts_cfg_.workers);
    const std::string backend_name = backend->name();
    const std::size_t voices = backend->voices().size();
    tts_ = std::make_unique<TtsStage>(std::move(backend), bc, sched::steady_clock(), &metrics_);
    if (!tts_cfg_.default_voice.empty() && !tts_->has_voice(tts_cfg_.default_voice)) {
      throw std::invalid_argument("tts.default_voice: '" + tts_cfg_.default_voice +
                                  "' is not a voice of " + backend_name);
    }
    api::SpeechLimits limits;
    limits.max_input_chars = static_cast<std::size_t>(tts_cfg_.max_input_chars);
    limits.output_sample_rate = tts_cfg_.output_sample_rate;
    limits.default_voice = tts_cfg_.default_voice;
    speech_ = std::make_unique<api::SpeechHandler>(*tts_, media_pool_, limits);
    spdlog::info("tts: backend {} ({} voices), default voice {}", backend_name, voices,
                 tts_cfg_.default_voice.empty() ? "(the backend's)" : tts_cfg_.default_voice);
  }

  asio::awaitable<void> not_ready(net::HttpExchange& ex) {
    return ex.respond(net::error_response(
        net::ApiError(503, "the speech models are not loaded (starting or stopping)", {},
                      "model_loading"),
        ex.request().version()));
  }

  asio::awaitable<void> transcribe(net::HttpExchange& ex) {
    if (!ready()) return not_ready(ex);
    return transcription_->handle(ex);
  }

  asio::awaitable<void> speak(net::HttpExchange& ex) {
    if (!ready()) return not_ready(ex);
    return speech_->handle(ex);
  }

  asio::awaitable<void> list_voices(net::HttpExchange& ex) {
    if (!ready()) return not_ready(ex);
    nlohmann::json data = nlohmann::json::array();
    for (const VoiceInfo& v : tts_->backend().voices()) {
      data.push_back({{"id", v.name}, {"language", v.language}, {"backend", v.backend}});
    }
    return ex.respond(net::make_json(http::status::ok,
                                     nlohmann::json{{"object", "list"}, {"data", data}}.dump(),
                                     ex.request().version()));
  }

  app::AsrSection asr_cfg_;
  app::TtsSection tts_cfg_;
  std::string models_dir_;
  obs::MetricsRegistry& metrics_;
  asio::thread_pool media_pool_{2};  // decoding, VAD, resampling, encoding
  std::unique_ptr<AsrStage> asr_;
  std::unique_ptr<TtsStage> tts_;
  std::unique_ptr<api::TranscriptionHandler> transcription_;
  std::unique_ptr<api::SpeechHandler> speech_;
  std::atomic<bool> ready_{false};
  std::mutex stop_mutex_;
};

}  // namespace

std::unique_ptr<app::Service> make_speech_service(const app::AppConfig& config,
                                                  obs::MetricsRegistry& metrics) {
  return std::make_unique<SpeechService>(config, metrics);
}

SpeechStages* speech_stages_of(app::Service& service) {
  return dynamic_cast<SpeechStages*>(&service);
}

}  // namespace talkserve::speech
