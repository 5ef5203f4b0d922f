#include "talkserve/pipeline/talk_service.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core/detail/base64.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>

#include "talkserve/avatar/avatar.hpp"
#include "talkserve/avatar/viseme_renderer.hpp"
#ifdef TALKSERVE_HAVE_WAV2LIP
#include "talkserve/avatar/wav2lip.hpp"
#endif
#include "talkserve/cache/clip_cache.hpp"
#include "talkserve/cache/clip_key.hpp"
#include "talkserve/cache/clip_routes.hpp"
#ifdef TALKSERVE_HAVE_REDIS
#include "talkserve/cache/redis_client.hpp"
#include "talkserve/cache/tiered_clip_store.hpp"
#include "talkserve/pipeline/redis_session_tier.hpp"
#endif
#include "talkserve/llm/chat_backend.hpp"
#include "talkserve/llm/llm_service.hpp"
#include "talkserve/media/audio.hpp"
#include "talkserve/media/resampler.hpp"
#include "talkserve/media/video.hpp"
#include "talkserve/net/api_error.hpp"
#include "talkserve/net/async_bridge.hpp"
#include "talkserve/net/multipart.hpp"
#include "talkserve/net/router.hpp"
#include "talkserve/net/stream_writer.hpp"
#include "talkserve/obs/executor_metrics.hpp"
#include "talkserve/sched/queue_delay_probe.hpp"
#include "talkserve/obs/log.hpp"
#include "talkserve/pipeline/session_store.hpp"
#include "talkserve/speech/asr_stage.hpp"
#include "talkserve/speech/sentence_splitter.hpp"
#include "talkserve/speech/speech_service.hpp"
#include "talkserve/speech/tts_stage.hpp"
#include "live_session.hpp"
#include "realtime_backend.hpp"
#include "stages.hpp"

namespace talkserve::pipeline {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using net::ApiError;
using nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

double ms_since(SteadyClock::time_point t0) {
  return std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count();
}

std::string base64_decode(std::string_view in) {
  namespace b64 = boost::beast::detail::base64;
  std::string out(b64::decoded_size(in.size()), '\0');
  auto [written, read] = b64::decode(out.data(), in.data(), in.size());
  if (read != in.size() && in.find_first_not_of("=\r\n ", read) != std::string_view::npos) {
    throw ApiError(400, "audio: not valid base64", "audio");
  }
  out.resize(written);
  return out;
}

struct TurnRequest {
  std::string session_id;
  std::optional<std::string> text;
  std::optional<std::string> audio;  // encoded bytes
  std::string voice;
  bool stream = false;
};

TurnRequest parse_turn(const net::Request& req) {
  TurnRequest out;
  if (auto parts = net::form_data_of(req)) {
    for (const auto& p : *parts) {
      if (p.name == "file") out.audio = std::string(p.data);
      else if (p.name == "text") out.text = std::string(p.data);
      else if (p.name == "session_id") out.session_id = std::string(p.data);
      else if (p.name == "voice") out.voice = std::string(p.data);
      else if (p.name == "stream") out.stream = p.data == "true" || p.data == "1";
    }
  } else {
    json body;
    try {
      body = json::parse(req.body());
    } catch (const json::exception& e) {
      throw ApiError(400, std::string("request body is not valid JSON: ") + e.what());
    }
    if (!body.is_object()) throw ApiError(400, "request body must be a JSON object");
    auto str = [&](const char* k) -> std::optional<std::string> {
      auto it = body.find(k);
      if (it == body.end() || it->is_null()) return std::nullopt;
      if (!it->is_string()) throw ApiError(400, std::string(k) + ": must be a string", k);
      return it->get<std::string>();
    };
    out.text = str("text");
    if (auto a = str("audio")) out.audio = base64_decode(*a);
    out.session_id = str("session_id").value_or("");
    out.voice = str("voice").value_or("");
    if (auto it = body.find("stream"); it != body.end() && !it->is_null()) {
      if (!it->is_boolean()) throw ApiError(400, "stream: must be true or false", "stream");
      out.stream = it->get<bool>();
    }
  }
  if (out.text && out.audio) throw ApiError(400, "send either text or audio, not both");
  if (!out.text && !out.audio) throw ApiError(400, "text or audio is required", "text");
  if (out.text && out.text->find_first_not_of(" \t\r\n") == std::string::npos) {
    throw ApiError(400, "text: must not be empty", "text");
  }
  if (out.text && out.text->size() > 8192) throw ApiError(400, "text: longer than 8192 bytes", "text");
  if (out.audio && out.audio->empty()) throw ApiError(400, "audio: the uploaded audio is empty", "file");
  return out;
}

// One turn, driven by callbacks from the stages and serialised on a strand of the pipeline
// pool. Emits its results through `emit` (SSE) and finally `done` (the whole answer or error).
class Turn : public std::enable_shared_from_this<Turn> {
 public:
  using Emit = std::function<void(const std::string& event, json data)>;
  using Done = std::function<void(std::optional<ApiError>, json)>;

  Turn(Stages& stages, asio::thread_pool& pool, Session session, TurnRequest req, int priority,
       std::string trace_id, Emit emit, Done done)
      : s_(stages),
        pool_(pool),
        strand_(asio::make_strand(pool)),
        session_(std::move(session)),
        req_(std::move(req)),
        priority_(priority),
        trace_id_(std::move(trace_id)),
        emit_(std::move(emit)),
        done_(std::move(done)),
        t0_(SteadyClock::now()) {
    // An explicit voice, else the session's (the last turn's, maybe on another replica), else
    // the server's default.
    voice_ = !req_.voice.empty()                                                  ? req_.voice
             : !session_.voice.empty() && s_.tts->has_voice(session_.voice) ? session_.voice
                                                                            : s_.cfg.voice;
  }

  void start() {
    emit_("session", json{{"session_id", session_.id}, {"trace_id", trace_id_}});
    if (req_.text) {
      asio::post(strand_, [self = shared_from_this()] { self->on_transcript(*self->req_.text); });
      return;
    }
    asio::post(pool_, [self = shared_from_this()] { self->recognise(); });
  }

  void cancel() {
    std::optional<llm::RequestId> llm_id;
    std::shared_ptr<speech::AsrTicket> asr_ticket;
    {
      std::lock_guard lock(cancel_mutex_);
      cancelled_ = true;
      llm_id = llm_id_;
      asr_ticket = asr_ticket_;
    }
    if (llm_id) s_.chat->cancel(*llm_id);
    if (asr_ticket) asr_ticket->cancel();
  }

 private:
  // On the pool: decode, VAD, then the ASR executor.
  void recognise() {
    if (is_cancelled()) {  // the client left while the upload waited for the pool
      asio::post(strand_, [self = shared_from_this()] {
        self->fail(ApiError(503, "turn cancelled", {}, "cancelled"));
      });
      return;
    }
    try {
      media::DecodeOptions opts;
      opts.sample_rate = speech::kAsrSampleRate;
      opts.max_seconds = s_.cfg.max_audio_seconds;
      auto decoded = media::decode_audio(
          {reinterpret_cast<const std::uint8_t*>(req_.audio->data()), req_.audio->size()}, opts);
      auto audio = std::make_shared<const std::vector<float>>(std::move(decoded.samples));
      auto segments = s_.asr->segment(*audio);
      auto t = s_.asr->transcribe(
          audio, std::move(segments), "", priority_,
          [self = shared_from_this()](sched::Expected<speech::Transcript> r) {
            asio::post(self->strand_, [self, r = std::move(r)]() mutable {
              if (!r) return self->fail(asr_stage_error(r.error()));
              self->on_transcript(r->text);
            });
          });
      if (!t) {
        asio::post(strand_, [self = shared_from_this(), e = t.error()] {
          self->fail(asr_stage_error(e));
        });
        return;
      }
      bool cancelled = false;
      {
        std::lock_guard lock(cancel_mutex_);
        asr_ticket_ = *t;
        cancelled = cancelled_;
      }
      if (cancelled) (*t)->cancel();  // the client left while the segments were queued
    } catch (const media::MediaError& e) {
      using Kind = media::MediaError::Kind;
      const int status = e.kind() == Kind::unsupported ? 415
                         : e.kind() == Kind::too_long  ? 413
                         : e.kind() == Kind::internal  ? 500
                                                       : 400;
      asio::post(strand_, [self = shared_from_this(), status, msg = std::string(e.what())] {
        self->fail(ApiError(status, "file: " + msg, "file"));
      });
    }
  }

  bool is_cancelled() {
    std::lock_guard lock(cancel_mutex_);
    return cancelled_;
  }

  void on_transcript(const std::string& text) {
    timings_["asr_ms"] = req_.audio ? ms_since(t0_) : 0.0;
    transcript_ = text;
    emit_("transcript", json{{"text", transcript_}});
    if (transcript_.empty()) return fail(ApiError(400, "no speech was recognised in the audio", "file", "no_speech"));
    const llm::ChatOptions opts = reply_options(s_, priority_);
    llm_t0_ = SteadyClock::now();
    try {
      const auto messages = conversation_for(s_, session_.history, transcript_);
      const auto id = s_.chat->chat(
          messages, opts,
          [self = shared_from_this()](std::string delta) {
            asio::post(self->strand_, [self, d = std::move(delta)] { self->on_reply_text(d); });
          },
          [self = shared_from_this()](llm::ChatOutcome o) {
            asio::post(self->strand_, [self, o = std::move(o)] { self->on_reply_done(o); });
          });
      std::lock_guard lock(cancel_mutex_);
      llm_id_ = id;
      if (cancelled_) s_.chat->cancel(id);
    } catch (const llm::ChatRefused& e) {
      fail(ApiError(e.status, std::string("LLM: ") + e.what()));
    }
  }

  void on_reply_text(const std::string& delta) {
    if (finished_) return;
    if (reply_.empty()) timings_["llm_first_token_ms"] = ms_since(llm_t0_);
    reply_ += delta;
    emit_("reply.delta", json{{"text", delta}});
    for (auto& sentence : splitter_.push(delta)) synthesise(std::move(sentence));
  }

  void on_reply_done(const llm::ChatOutcome& o) {
    if (finished_) return;
    timings_["llm_ms"] = ms_since(llm_t0_);
    if (o.reason == llm::FinishReason::error || o.reason == llm::FinishReason::cancelled) {
      return fail(ApiError(o.reason == llm::FinishReason::error ? (o.status ? o.status : 500) : 503, "LLM: " + o.message));
    }
    for (auto& sentence : splitter_.flush()) synthesise(std::move(sentence));
    llm_done_ = true;
    emit_("reply.done", json{{"text", reply_}, {"finish_reason", llm::to_string(o.reason)}});
    if (sentences_.empty()) return fail(ApiError(500, "the reply has nothing to say"));
    maybe_render();
  }

  void synthesise(std::string sentence) {
    const std::size_t index = sentences_.size();
    sentences_.push_back(sentence);
    speech_.emplace_back();
    if (index == 0) tts_t0_ = SteadyClock::now();
    speech::TtsRequest r;
    r.text = std::move(sentence);
    r.voice = voice_;
    auto id = s_.tts->synthesize(
        std::move(r), priority_, [self = shared_from_this(), index](sched::Expected<speech::TtsResult> res) {
          asio::post(self->strand_, [self, index, res = std::move(res)]() mutable {
            self->on_speech(index, std::move(res));
          });
        });
    if (!id) fail(ApiError(503, "speech synthesis queue: " + id.error().message, {}, "queue_full"));
  }

  void on_speech(std::size_t index, sched::Expected<speech::TtsResult> res) {
    if (finished_) return;
    if (!res) return fail(ApiError(500, "speech synthesis: " + res.error().message));
    if (index == 0) timings_["tts_first_sentence_ms"] = ms_since(tts_t0_);
    speech_[index] = std::move(*res);
    ++speech_done_;
    maybe_render();
  }

  // Once the reply is complete and every sentence is spoken: one audio track and phoneme
  // timeline, then the clip (from the cache, or rendered and encoded on the pool).
  void maybe_render() {
    if (!llm_done_ || speech_done_ != sentences_.size() || rendering_) return;
    rendering_ = true;
    timings_["tts_ms"] = ms_since(tts_t0_);
    asio::post(pool_, [self = shared_from_this()] { self->render(); });
  }

  void render() {  // on the pool
    try {
      const auto r0 = SteadyClock::now();
      avatar::RenderInput input;
      std::vector<float> audio;
      std::vector<speech::PhonemeEvent> phonemes;
      std::optional<media::AudioResampler> resampler;
      for (const auto& piece : speech_) {
        if (!resampler) resampler.emplace(piece.sample_rate, kOutputRate);
        const double offset = audio.size() / static_cast<double>(kOutputRate);
        auto pcm = resampler->push(piece.samples);
        audio.insert(audio.end(), pcm.begin(), pcm.end());
        for (auto p : piece.phonemes) {
          p.start += offset;
          phonemes.push_back(std::move(p));
        }
      }
      if (resampler) {
        auto tail = resampler->flush();
        audio.insert(audio.end(), tail.begin(), tail.end());
      }
      const std::string video_id = cache::ClipKeyBuilder()
                                       .avatar(s_.avatar->fingerprint)
                                       .tts(reply_, voice_)
                                       .model("tts", s_.tts->backend().name())
                                       .renderer(s_.renderer->name(), s_.renderer->version())
                                       .param("fps", s_.cfg.fps)
                                       .param("crf", s_.cfg.video_crf)
                                       .param("rate", kOutputRate)
                                       .finish();
      // get() verifies the stored clip (a damaged one is dropped and rendered again).
      bool cached = s_.cache->get(video_id).has_value();
      if (!cached) {
        input.audio = audio;
        input.sample_rate = kOutputRate;
        input.phonemes = phonemes;
        input.fps = s_.cfg.fps;
        avatar::RenderState state;
        auto frames = s_.renderer->render(*s_.avatar, input, state);
        timings_render_ = ms_since(r0);
        const auto e0 = SteadyClock::now();
        media::VideoParams vp;
        vp.width = s_.avatar->portrait.width;
        vp.height = s_.avatar->portrait.height;
        vp.fps = s_.cfg.fps;
        vp.crf = s_.cfg.video_crf;
        vp.audio_sample_rate = kOutputRate;
        const std::string mp4 = media::encode_mp4_clip(frames, audio, vp);
        timings_encode_ = ms_since(e0);
        const auto put = s_.cache->put(video_id, mp4);
        if (put != cache::PutStatus::stored && put != cache::PutStatus::exists) {
          throw std::runtime_error("the clip could not be stored in the cache");
        }
      }
      asio::post(strand_, [self = shared_from_this(), video_id, cached,
                           seconds = audio.size() / static_cast<double>(kOutputRate)] {
        self->on_clip(video_id, cached, seconds);
      });
    } catch (const std::exception& e) {
      asio::post(strand_, [self = shared_from_this(), msg = std::string(e.what())] {
        self->fail(ApiError(500, "rendering failed: " + msg));
      });
    }
  }

  void on_clip(const std::string& video_id, bool cached, double seconds) {
    if (finished_) return;
    timings_["render_ms"] = timings_render_;
    timings_["encode_ms"] = timings_encode_;
    timings_["total_ms"] = ms_since(t0_);
    const std::string url = "/v1/clips/" + video_id + ".mp4";
    emit_("audio", json{{"audio_url", url}, {"duration", seconds}});
    emit_("video", json{{"video_url", url}, {"cached", cached}, {"duration", seconds}});
    finished_ = true;
    s_.sessions->end_turn(session_.id, TurnRecord{transcript_, reply_, voice_, s_.avatar->id});
    json answer{{"session_id", session_.id},
                {"transcript", transcript_},
                {"reply", reply_},
                {"audio_url", url},
                {"video_url", url},
                {"duration", seconds},
                {"cached", cached},
                {"timings", timings_},
                {"trace_id", trace_id_}};
    done_(std::nullopt, std::move(answer));
  }

  void fail(ApiError e) {
    if (finished_) return;
    finished_ = true;
    {
      std::lock_guard lock(cancel_mutex_);
      if (llm_id_) s_.chat->cancel(*llm_id_);
    }
    s_.sessions->abort_turn(session_.id);
    done_(std::move(e), json{});
  }

  Stages& s_;
  asio::thread_pool& pool_;
  asio::strand<asio::thread_pool::executor_type> strand_;
  Session session_;
  TurnRequest req_;
  int priority_;
  std::string trace_id_;
  Emit emit_;
  Done done_;
  std::string voice_;
  SteadyClock::time_point t0_, llm_t0_, tts_t0_;

  std::mutex cancel_mutex_;
  bool cancelled_ = false;
  std::optional<llm::RequestId> llm_id_;
  std::shared_ptr<speech::AsrTicket> asr_ticket_;

  // Strand state.
  std::string transcript_, reply_;
  speech::SentenceStream splitter_;
  std::vector<std::string> sentences_;
  std::vector<speech::TtsResult> speech_;
  std::size_t speech_done_ = 0;
  bool llm_done_ = false;
  bool rendering_ = false;
  bool finished_ = false;
  json timings_ = json::object();
  double timings_render_ = 0, timings_encode_ = 0;  // written on the pool before on_clip
};

class TalkService final : public app::Service {
 public:
  TalkService(const app::AppConfig& config, obs::MetricsRegistry& metrics,
              std::vector<app::Service*> others, std::shared_ptr<cache::RedisClient> redis)
      : models_dir_(config.server.models_dir), metrics_(metrics), others_(std::move(others)) {
    stages_.cfg = config.talk;
    if (stages_.cfg.voice.empty()) stages_.cfg.voice = config.tts.default_voice;
    cache::ClipCacheConfig cc;
    cc.dir = stages_.cfg.cache_dir;
    cc.max_bytes = static_cast<std::uint64_t>(stages_.cfg.cache_max_mb) << 20;
    auto disk = std::make_unique<cache::ClipCache>(cc, &metrics_);
    if (config.redis.url.empty()) {
      stages_.cache = std::move(disk);
    } else {
#ifdef TALKSERVE_HAVE_REDIS
      cache::RedisClientConfig client;
      client.url = config.redis.url;
      client.timeout = std::chrono::milliseconds(config.redis.timeout_ms);
      redis_ = redis ? std::move(redis) : std::make_shared<cache::RedisClient>(client, &metrics_);
      cache::RedisClipTierConfig rc;
      rc.url = config.redis.url;
      rc.ttl = std::chrono::seconds(config.redis.clip_ttl_s);
      rc.max_entry_bytes = static_cast<std::uint64_t>(config.redis.max_clip_mb) << 20;
      rc.timeout = client.timeout;
      rc.key_prefix = config.redis.key_prefix;
      stages_.cache = std::make_unique<cache::TieredClipStore>(
          std::move(disk), std::make_unique<cache::RedisClipTier>(rc, redis_, &metrics_));
#else
      throw std::runtime_error("redis.url: this build has no Redis tier (hiredis was not found)");
#endif
    }
    SessionConfig sc;
    sc.idle_ttl = std::chrono::seconds(stages_.cfg.session_ttl_s);
    sc.max_sessions = static_cast<std::size_t>(stages_.cfg.max_sessions);
    sc.max_turns = static_cast<std::size_t>(stages_.cfg.max_history_turns);
    std::shared_ptr<SessionTier> shared_sessions;
#ifdef TALKSERVE_HAVE_REDIS
    if (redis_ && config.redis.sessions) {
      RedisSessionTierConfig tc;
      tc.key_prefix = config.redis.session_key_prefix;
      tc.idle_ttl = sc.idle_ttl;
      tc.lock_ttl = std::chrono::seconds(config.redis.session_lock_s);
      shared_sessions = std::make_shared<RedisSessionTier>(tc, redis_, &metrics_);
      spdlog::info("talk: sessions shared through Redis (keys {}<id>)", tc.key_prefix);
    }
#endif
    stages_.sessions = std::make_unique<SessionStore>(sc, sched::steady_clock(), std::move(shared_sessions));
    pool_probe_ = std::make_unique<sched::QueueDelayProbe>(
        sched::steady_clock(),
        [this](std::function<void()> probe) { asio::post(pool_, std::move(probe)); },
        std::chrono::milliseconds(stages_.cfg.max_queue_delay_ms));
    shed_ = &obs::queue_rejected_counter(metrics_, "talk", "overloaded");
  }

  ~TalkService() override { stop(); }

  std::string name() const override { return "talk"; }

  std::unique_ptr<avatar::LipSyncRenderer> make_renderer() const {
    if (stages_.cfg.renderer == "viseme") return avatar::make_viseme_renderer();
#ifdef TALKSERVE_HAVE_WAV2LIP
    avatar::Wav2LipOptions wo;
    wo.weights = stages_.cfg.wav2lip_weights;
    if (!std::filesystem::path(wo.weights).is_absolute()) {
      wo.weights = (std::filesystem::path(models_dir_) / wo.weights).string();
    }
    wo.device = stages_.cfg.wav2lip_device;
    return avatar::make_wav2lip_renderer(wo);
#else
    throw std::runtime_error("talk.renderer: this build has no Wav2Lip (libtorch was not found)");
#endif
  }

  void register_routes(net::Router& router) override {
    net::RouteOptions o;
    o.name = "/v1/talk";
    o.body_limit = 16u << 20;
    router.add(http::verb::post, "/v1/talk", [this](net::HttpExchange& ex) { return talk(ex); }, o);
    net::RouteOptions a;
    a.name = "/v1/avatar";
    router.add(http::verb::get, "/v1/avatar", [this](net::HttpExchange& ex) { return describe_avatar(ex); }, a);
    cache::register_clip_routes(router, *stages_.cache);
    net::RouteOptions live;
    live.name = "/v1/stream";
    router.add_websocket(
        "/v1/stream",
        [this](const net::RequestContext& ctx) -> std::shared_ptr<net::WebSocketHandler> {
          if (!ready()) return nullptr;
          // A live session speaks: refused before the upgrade while ASR, the LLM or the
          // render pool is over its bound (a 503 the client can retry, not a dead session).
          refuse_if_overloaded(ctx.priority, /*spoken=*/true);
          return make_live_session(stages_, control_pool_, pool_, ctx);
        },
        live);
    // The same live pipeline behind the OpenAI Realtime event protocol (docs/realtime.md).
    net::RouteOptions realtime;
    realtime.name = "/v1/realtime";
    router.add_websocket(
        "/v1/realtime",
        [this](const net::RequestContext& ctx) -> std::shared_ptr<net::WebSocketHandler> {
          if (!ready()) return nullptr;
          refuse_if_overloaded(ctx.priority, /*spoken=*/true);
          return make_realtime_session(stages_, control_pool_, pool_, ctx);
        },
        realtime);
  }

  // Load shedding (asr/llm/talk .max_queue_delay_ms): work that would queue behind a backlog
  // its client is likely to give up on gets a quick 503 `overloaded` (ApiError) instead. Work
  // already admitted is never shed.
  void refuse_if_overloaded(int priority, bool spoken) {
    if (spoken && stages_.asr && stages_.asr->overloaded(priority)) {
      throw ApiError(503, "speech recognition is overloaded (queued audio has waited over "
                          "asr.max_queue_delay_ms); retry later",
                     {}, "overloaded");
    }
    if (stages_.chat && stages_.chat->overloaded(priority)) {
      throw ApiError(503, "the LLM is overloaded (requests have waited over "
                          "llm.max_queue_delay_ms for their first token); retry later",
                     {}, "overloaded");
    }
    if (pool_probe_->overloaded()) {
      shed_->inc();
      throw ApiError(503,
                     "the talk pipeline is overloaded (turns queued for decoding, rendering and "
                     "encoding have waited over talk.max_queue_delay_ms = " +
                         std::to_string(stages_.cfg.max_queue_delay_ms) + " ms); retry later",
                     {}, "overloaded");
    }
  }

  void start() override {
    for (app::Service* s : others_) {
      if (auto* c = llm::chat_backend_of(*s)) stages_.chat = c;
      if (auto* sp = speech::speech_stages_of(*s)) {
        stages_.asr = sp->asr_stage();
        stages_.tts = sp->tts_stage();
      }
    }
    if (stages_.chat == nullptr) throw std::runtime_error("talk: needs the LLM (llm.enabled)");
    if (stages_.tts == nullptr) throw std::runtime_error("talk: needs speech synthesis (tts.enabled)");
    std::string path = stages_.cfg.avatar;
    if (!std::filesystem::path(path).is_absolute()) {
      path = (std::filesystem::path(models_dir_) / path).string();
    }
    avatar::AvatarLoadOptions ao;
    ao.cache_dir = (std::filesystem::path(stages_.cfg.cache_dir) / "avatars").string();
    stages_.avatar = avatar::load_avatar(path, ao);
    stages_.live_avatar = stages_.avatar;
    const int longer = std::max(stages_.avatar->portrait.width, stages_.avatar->portrait.height);
    if (stages_.cfg.stream_size > 0 && stages_.cfg.stream_size < longer) {
      ao.max_size = stages_.cfg.stream_size;
      stages_.live_avatar = avatar::load_avatar(path, ao);
    }
    stages_.renderer = make_renderer();
    spdlog::info("talk: avatar {} ({}x{}), renderer {} {}, clip cache {} ({} MB cap)",
                 stages_.avatar->id, stages_.avatar->portrait.width,
                 stages_.avatar->portrait.height, stages_.renderer->name(),
                 stages_.renderer->version(), stages_.cfg.cache_dir, stages_.cfg.cache_max_mb);
    ready_.store(true);
  }

  bool ready() const override { return ready_.load(); }

  void stop() override {
    std::lock_guard lock(stop_mutex_);
    ready_.store(false);
    control_pool_.join();
    pool_.join();
  }

 private:
  asio::awaitable<void> talk(net::HttpExchange& ex) {
    const unsigned version = ex.request().version();
    std::optional<ApiError> error;
    TurnRequest req;
    std::optional<Session> session;
    try {
      if (!ready()) throw ApiError(503, "the talk pipeline is not ready (starting or stopping)", {}, "model_loading");
      req = parse_turn(ex.request());
      if (req.audio && stages_.asr == nullptr) {
        throw ApiError(400, "audio input needs speech recognition (asr.enabled)", "file");
      }
      if (!req.voice.empty() && !stages_.tts->has_voice(req.voice)) {
        throw ApiError(400, "voice: '" + req.voice + "' is not a voice of " + stages_.tts->backend().name(),
                       "voice", "unknown_voice");
      }
      refuse_if_overloaded(ex.context().priority, req.audio.has_value());
    } catch (const ApiError& e) {
      error = e;
    }
    if (!error) {
      // Off the I/O thread: with a shared session tier this asks Redis (up to its timeout).
      struct Begun {
        std::optional<Session> session;
        std::string why;
        SessionStore::Refusal refusal{};
      };
      auto begin = [this, id = req.session_id](auto callback) {
        asio::post(control_pool_, [this, id, callback = std::move(callback)]() mutable {
          Begun b;
          b.session = stages_.sessions->begin_turn(id, &b.why, &b.refusal);
          callback(std::move(b));
        });
      };
      Begun begun = co_await net::await_callback<Begun>(std::move(begin));
      session = std::move(begun.session);
      if (!session) {
        const int status = begun.refusal == SessionStore::Refusal::busy        ? 409
                           : begun.refusal == SessionStore::Refusal::not_found ? 404
                                                                               : 503;
        error = ApiError(status, begun.why, "session_id");
      }
    }
    if (error) co_return co_await ex.respond(net::error_response(*error, version));

    const bool stream = req.stream;
    std::shared_ptr<net::StreamWriter> writer;
    if (stream) {
      std::string content_type = "text/event-stream";
      writer = co_await ex.start_stream(std::move(content_type));
    }
    auto emit = [writer](const std::string& event, json data) {
      if (writer) writer->push(net::sse_event(data.dump(), event));
    };
    // Non-streamed answers arrive through this promise-like callback.
    struct Outcome {
      std::optional<ApiError> error;
      json answer;
    };
    auto holder = std::make_shared<std::function<void(Outcome)>>();
    auto done = [writer, holder](std::optional<ApiError> e, json answer) {
      if (writer) {
        if (e) {
          writer->push(net::sse_event(net::error_json(*e), "error"));
        } else {
          writer->push(net::sse_event(answer.dump(), "done"));
        }
        writer->close();
      } else if (*holder) {
        (*holder)(Outcome{std::move(e), std::move(answer)});
      }
    };
    auto turn = std::make_shared<Turn>(stages_, pool_, std::move(*session), std::move(req),
                                       ex.context().priority, ex.context().trace_id, emit, done);
    if (stream) {
      writer->set_on_disconnect([weak = std::weak_ptr<Turn>(turn)] {
        if (auto t = weak.lock()) t->cancel();
      });
      turn->start();
      co_return;
    }
    ex.watch_disconnect([weak = std::weak_ptr<Turn>(turn)] {
      if (auto t = weak.lock()) t->cancel();
    });
    auto start = [holder, turn](auto callback) {
      *holder = std::move(callback);
      turn->start();
    };
    Outcome outcome = co_await net::await_callback<Outcome>(std::move(start));
    if (outcome.error) co_return co_await ex.respond(net::error_response(*outcome.error, version));
    co_await ex.respond(net::make_json(http::status::ok, outcome.answer.dump(), version));
  }

  // The avatar turns are rendered with: its size and the regions the renderer animates.
  asio::awaitable<void> describe_avatar(net::HttpExchange& ex) {
    const unsigned version = ex.request().version();
    if (!ready()) {
      co_return co_await ex.respond(net::error_response(
          ApiError(503, "the talk pipeline is not ready", {}, "model_loading"), version));
    }
    const auto& av = *stages_.avatar;
    auto box = [](const avatar::Box& b) {
      return json{{"x", b.x}, {"y", b.y}, {"width", b.width}, {"height", b.height}};
    };
    json body{{"id", av.id},
              {"fingerprint", av.fingerprint},
              {"width", av.portrait.width},
              {"height", av.portrait.height},
              {"face", box(av.face)},
              {"mouth", box(av.mouth)},
              {"left_eye", box(av.left_eye)},
              {"right_eye", box(av.right_eye)},
              {"renderer", stages_.renderer->name() + " " + stages_.renderer->version()},
              {"fps", stages_.cfg.fps}};
    co_await ex.respond(net::make_json(http::status::ok, body.dump(), version));
  }

  std::string models_dir_;
  obs::MetricsRegistry& metrics_;
  std::vector<app::Service*> others_;
#ifdef TALKSERVE_HAVE_REDIS
  std::shared_ptr<cache::RedisClient> redis_;  // shared by the clip and session tiers
#endif
  Stages stages_;
  asio::thread_pool pool_{2};          // decoding, rendering and encoding of turns
  asio::thread_pool control_pool_{1};  // live sessions: VAD, control frames, stage callbacks
  std::unique_ptr<sched::QueueDelayProbe> pool_probe_;  // admission of turns (talk.max_queue_delay_ms)
  obs::Counter* shed_ = nullptr;  // talkserve_queue_rejected_total{executor="talk",reason="overloaded"}
  std::atomic<bool> ready_{false};
  std::mutex stop_mutex_;
};

}  // namespace

std::unique_ptr<app::Service> make_talk_service(const app::AppConfig& config,
                                                obs::MetricsRegistry& metrics,
                                                std::vector<app::Service*> others,
                                                std::shared_ptr<cache::RedisClient> redis) {
  return std::make_unique<TalkService>(config, metrics, std::move(others), std::move(redis));
}

}  // namespace talkserve::pipeline
