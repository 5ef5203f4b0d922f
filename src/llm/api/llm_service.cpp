#include "talkserve/llm/llm_service.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <optional>

#include "generation_stream.hpp"
#include "openai_protocol.hpp"
#include "talkserve/llm/chat_backend.hpp"
#include "talkserve/llm/chat_template.hpp"
#include "talkserve/llm/engine.hpp"
#include "talkserve/llm/engine_metrics.hpp"
#include "talkserve/llm/model_loader.hpp"
#include "talkserve/llm/tokenizer.hpp"
#include "talkserve/llm/tokenizer_detokenizer.hpp"
#include "talkserve/net/async_bridge.hpp"
#include "talkserve/net/router.hpp"
#include "talkserve/obs/executor_metrics.hpp"
#include "talkserve/obs/log.hpp"
#include "talkserve/obs/metrics.hpp"

namespace talkserve::llm {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using nlohmann::json;
using net::ApiError;
using net::error_response;
using api::CollectedResult;
using api::Endpoint;
using api::GenerationStream;
using api::ResultCollector;

net::RouteOptions named(std::string name) {
  net::RouteOptions o;
  o.name = std::move(name);
  return o;
}

std::string resolve(const std::string& models_dir, const std::string& p) {
  if (p.empty()) return p;
  std::filesystem::path path(p);
  if (path.is_absolute()) return p;
  return (std::filesystem::path(models_dir) / path).string();
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One line per finished generation, tagged with the request's trace id.
GenerationCallback logged(std::string trace_id, GenerationCallback next) {
  return [log = obs::RequestLogger(std::move(trace_id)), next = std::move(next)](
             GenerationEvent&& ev) {
    if (const auto* fin = std::get_if<FinishedEvent>(&ev)) {
      log.debug("llm: finished {} ({}), prompt {} tokens ({} cached), completion {} tokens, "
                "queue {:.1f} ms, ttft {:.1f} ms, total {:.1f} ms",
                to_string(fin->reason), fin->message, fin->usage.prompt_tokens,
                fin->usage.cached_prompt_tokens, fin->usage.completion_tokens,
                fin->timing.queue_time * 1e3, fin->timing.time_to_first_token.value_or(0) * 1e3,
                fin->timing.e2e_latency * 1e3);
    }
    next(std::move(ev));
  };
}


// Feeds the engine's stats to the vLLM-named metrics and to the executor-level series every
// executor exports (talkserve_batch_size{executor}, talkserve_queue_depth{executor}).
class LlmObserver final : public EngineObserver {
 public:
  LlmObserver(obs::MetricsRegistry& registry, const std::string& model,
              std::int64_t kv_cache_bytes)
      : engine_metrics_(registry, model, kv_cache_bytes),
        batch_size_(registry.histogram("talkserve_batch_size",
                                       "Requests merged into one executor batch (LLM: sequences "
                                       "in one forward step)",
                                       obs::exponential_buckets(1, 2, 10),
                                       {{"executor", "llm"}})) {}
  void on_step(const EngineStats& stats) override {
    engine_metrics_.on_step(stats);
    if (stats.num_running > 0) batch_size_.observe(stats.num_running);
  }
  void on_request_finished(const FinishedEvent& event) override {
    engine_metrics_.on_request_finished(event);
  }

 private:
  EngineMetrics engine_metrics_;
  obs::Histogram& batch_size_;
};

constexpr std::size_t kMaxBytesPerToken = 32;

// One slot of LlmService's request bound, released when the last owner lets go.
struct Reservation {
  explicit Reservation(std::atomic<int>& n) : n(n) {}
  ~Reservation() { n.fetch_sub(1); }
  Reservation(const Reservation&) = delete;
  Reservation& operator=(const Reservation&) = delete;
  std::atomic<int>& n;
};

class LlmService final : public app::Service, public ChatBackend {
 public:
  LlmService(const app::AppConfig& config, obs::MetricsRegistry& metrics)
      : cfg_(config.llm),
        models_dir_(config.server.models_dir),
        metrics_(metrics),
        shed_(&obs::queue_rejected_counter(metrics, "llm", "overloaded")),
        queue_full_(&obs::queue_rejected_counter(metrics, "llm", "queue_full")) {}

  ~LlmService() override {
    metrics_.remove_callback_gauge("talkserve_queue_depth", {{"executor", "llm"}});
    stop();
  }

  std::string name() const override { return "llm"; }

  void register_routes(net::Router& router) override {
    router.add(http::verb::get, "/v1/models",
               [this](net::HttpExchange& ex) { return list_models(ex); }, named("/v1/models"));
    router.add(http::verb::get, "/v1/models/{id}",
               [this](net::HttpExchange& ex) { return get_model(ex); }, named("/v1/models/{id}"));
    router.add(http::verb::post, "/v1/completions",
               [this](net::HttpExchange& ex) { return generate(ex, Endpoint::completions); },
               named("/v1/completions"));
    router.add(http::verb::post, "/v1/chat/completions",
               [this](net::HttpExchange& ex) { return generate(ex, Endpoint::chat); },
               named("/v1/chat/completions"));
  }

  void start() override {
    ModelConfig mc;
    mc.path = resolve(models_dir_, cfg_.model);
    mc.device = cfg_.device;
    mc.block_size = cfg_.block_size;
    mc.num_blocks = cfg_.num_blocks;
    mc.kv_cache_bytes = static_cast<std::int64_t>(cfg_.kv_cache_mb) << 20;
    mc.num_threads = cfg_.threads;
    mc.served_name = cfg_.name;
    mc.validate();
    runner_ = load_model(mc);
    const ModelInfo& info = runner_->info();

    TokenizerConfig tc;
    tc.path = cfg_.tokenizer.empty() ? mc.path : resolve(models_dir_, cfg_.tokenizer);
    tc.vocab_size = info.vocab_size;
    tokenizer_ = load_tokenizer(tc);
    if (tokenizer_->vocab_size() > info.vocab_size) {
      throw std::runtime_error("llm.tokenizer: " + tc.path + " has " +
                               std::to_string(tokenizer_->vocab_size()) +
                               " tokens but the model only " + std::to_string(info.vocab_size));
    }
    template_ = choose_template(mc.path);

    EngineConfig ec;
    ec.scheduler.max_num_seqs = cfg_.max_num_seqs;
    ec.scheduler.max_num_batched_tokens = cfg_.max_num_batched_tokens;
    ec.scheduler.max_prefill_chunk = cfg_.max_prefill_chunk;
    ec.enable_prefix_caching = cfg_.prefix_caching;
    if (std::string why = ec.validate(); !why.empty()) throw std::invalid_argument("llm." + why);

    observer_ = std::make_unique<LlmObserver>(metrics_, cfg_.name, info.kv_cache_bytes);
    engine_ = std::make_unique<Engine>(*runner_, ec, sched::steady_clock(),
                                       make_detokenizer_factory(*tokenizer_), observer_.get());
    metrics_.callback_gauge("talkserve_queue_depth", "Requests waiting for an executor",
                            {{"executor", "llm"}}, [e = engine_.get()] {
                              return static_cast<double>(e->stats().num_waiting);
                            });
    engine_->start();
    spdlog::info("llm: model {} ({} layers, dim {}, vocab {}, context {}), tokenizer {}, "
                 "chat template {}, KV cache {} blocks of {} tokens",
                 cfg_.name, info.n_layers, info.dim, info.vocab_size, info.max_seq_len,
                 tokenizer_->kind(), template_.name(), engine_->num_blocks(),
                 engine_->block_size());
    ready_.store(true);
  }

  bool ready() const override { return ready_.load(); }

  // ChatBackend
  bool chat_ready() const override { return ready(); }
  std::string model_name() const override { return cfg_.name; }
  int context_length() const override { return runner_ ? runner_->info().max_seq_len : 0; }

  int count_prompt_tokens(const std::vector<ChatMessage>& messages) const override {
    if (!ready()) return 0;
    const std::string text = template_.render(messages, /*add_generation_prompt=*/true);
    return static_cast<int>(tokenizer_->encode(text, false, /*parse_special=*/true).size());
  }

  RequestId chat(const std::vector<ChatMessage>& messages, const ChatOptions& options,
                 std::function<void(std::string)> on_text,
                 std::function<void(ChatOutcome)> on_done) override {
    if (!ready()) throw ChatRefused(503, "the LLM is not loaded (starting or stopping)");
    if (!try_reserve()) {
      queue_full_->inc();
      throw ChatRefused(503, "the LLM queue is full; retry later");
    }
    auto reservation = std::make_shared<Reservation>(active_);
    api::ParsedRequest req;
    req.endpoint = Endpoint::chat;
    req.messages = messages;
    req.params.max_tokens = options.max_tokens;
    req.params.temperature = options.temperature;
    req.params.seed = options.seed;
    req.max_tokens_given = false;  // shrink to what fits the context
    GenerationRequest g;
    try {
      g = build(req, options.priority);
    } catch (const ApiError& e) {
      throw ChatRefused(e.status, e.what());
    }
    g.on_event = [on_text = std::move(on_text), on_done = std::move(on_done),
                  reservation](GenerationEvent&& ev) {
      if (auto* tok = std::get_if<TokenEvent>(&ev)) {
        if (!tok->text.empty()) on_text(std::move(tok->text));
      } else if (auto* fin = std::get_if<FinishedEvent>(&ev)) {
        on_done(ChatOutcome{fin->reason, fin->message, fin->usage});
      }
    };
    SubmitResult r = engine_->submit(std::move(g));
    if (!r) throw ChatRefused(ready() ? 400 : 503, r.error);
    return r.id;
  }

  void cancel(RequestId id) override {
    if (engine_) engine_->cancel(id);
  }

  void stop() override {
    std::lock_guard lock(stop_mutex_);
    ready_.store(false);  // new requests get 503, not an engine error
    if (engine_) engine_->stop();
    prep_pool_.join();
  }

 private:
  ChatTemplate choose_template(const std::string& model_path) const {
    if (cfg_.chat_template != "auto") return ChatTemplate::from_name(cfg_.chat_template);
    namespace fs = std::filesystem;
    fs::path dir = fs::is_directory(model_path) ? fs::path(model_path)
                                                : fs::path(model_path).parent_path();
    if (fs::exists(dir / "tokenizer_config.json"))
      return ChatTemplate::from_tokenizer_config((dir / "tokenizer_config.json").string());
    return ChatTemplate(ChatTemplateKind::kPlain);
  }

  json model_object() const {
    json m = {{"id", cfg_.name},
              {"object", "model"},
              {"created", created_},
              {"owned_by", "talkserve"}};
    if (runner_) m["max_model_len"] = runner_->info().max_seq_len;
    return m;
  }

  asio::awaitable<void> list_models(net::HttpExchange& ex) {
    json body = {{"object", "list"}, {"data", json::array()}};
    if (ready()) body["data"].push_back(model_object());
    co_await ex.respond(net::make_json(http::status::ok, body.dump(), ex.request().version()));
  }

  asio::awaitable<void> get_model(net::HttpExchange& ex) {
    if (!ready() || ex.param("id") != cfg_.name) {
      co_await ex.respond(error_response(
          ApiError(404, "The model '" + std::string(ex.param("id")) + "' does not exist",
                   "model", "model_not_found", "invalid_request_error"),
          ex.request().version()));
      co_return;
    }
    co_await ex.respond(
        net::make_json(http::status::ok, model_object().dump(), ex.request().version()));
  }

  // Turns a parsed request into the engine's typed request (prompt ids, stop conditions).
  GenerationRequest build(const api::ParsedRequest& req, int priority) const {
    GenerationRequest g;
    g.params = req.params;
    g.priority = priority;
    const bool has_bos = tokenizer_->bos_id() >= 0;
    const int context = runner_->info().max_seq_len;
    // Tokenizing is superlinear in the text length; text this long cannot fit the context
    // anyway (no token covers 32 bytes on average), so refuse it before tokenizing.
    std::size_t text_bytes = req.prompt_text ? req.prompt_text->size() : 0;
    for (const auto& m : req.messages) text_bytes += m.content.size();
    if (text_bytes > static_cast<std::size_t>(context) * kMaxBytesPerToken) {
      throw ApiError(400,
                     "This model's maximum context length is " + std::to_string(context) +
                         " tokens; the prompt has " + std::to_string(text_bytes) +
                         " bytes, far more than fits",
                     req.endpoint == Endpoint::chat ? "messages" : "prompt",
                     "context_length_exceeded");
    }
    if (req.endpoint == Endpoint::chat) {
      std::string text = template_.render(req.messages, /*add_generation_prompt=*/true);
      g.prompt = tokenizer_->encode(text, has_bos && !template_.includes_bos(),
                                    /*parse_special=*/true);
      if (!req.params.ignore_eos) {
        for (auto& s : template_.stop_strings()) g.params.stop.push_back(s);
      }
    } else if (req.prompt_text) {
      g.prompt = tokenizer_->encode(*req.prompt_text, has_bos);
    } else {
      g.prompt = req.prompt_ids;
      const int vocab = runner_->info().vocab_size;
      for (int32_t id : g.prompt) {
        if (id >= vocab) {
          throw ApiError(400, "prompt: token id " + std::to_string(id) +
                                  " is outside the vocabulary (size " + std::to_string(vocab) +
                                  ")",
                         "prompt");
        }
      }
    }
    if (g.prompt.empty()) throw ApiError(400, "prompt: encodes to no tokens", "prompt");
    if (!req.params.ignore_eos) {
      for (int32_t id : tokenizer_->stop_ids()) g.params.stop_token_ids.push_back(id);
    }
    const int prompt_len = static_cast<int>(g.prompt.size());
    if (prompt_len >= context) {
      throw ApiError(400,
                     "This model's maximum context length is " + std::to_string(context) +
                         " tokens; the prompt has " + std::to_string(prompt_len),
                     req.endpoint == Endpoint::chat ? "messages" : "prompt",
                     "context_length_exceeded");
    }
    if (req.max_tokens_given && prompt_len + req.params.max_tokens > context) {
      throw ApiError(400,
                     "This model's maximum context length is " + std::to_string(context) +
                         " tokens; the prompt (" + std::to_string(prompt_len) +
                         ") plus max_tokens (" + std::to_string(req.params.max_tokens) +
                         ") exceeds it",
                     req.endpoint == Endpoint::chat ? "max_completion_tokens" : "max_tokens",
                     "context_length_exceeded");
    }
    // The default max_tokens shrinks to what fits.
    g.params.max_tokens = std::min(g.params.max_tokens, context - prompt_len);
    // The engine's own checks (KV blocks needed, ...) before any response head is sent. The
    // real event callback is attached by the caller.
    g.on_event = [](GenerationEvent&&) {};
    if (std::string why = validate_request(g, engine_->model_info(), engine_->block_size(),
                                           engine_->num_blocks(), /*has_detokenizer=*/true);
        !why.empty()) {
      throw ApiError(400, why);
    }
    return g;
  }

  bool overloaded(int priority) const override {
    if (cfg_.max_queue_delay_ms <= 0 || !engine_ || !ready()) return false;
    return engine_->queue_delay(priority) >= std::chrono::milliseconds(cfg_.max_queue_delay_ms);
  }

  ApiError overloaded_error() const {
    return ApiError(503,
                    "the LLM is overloaded (requests have waited over llm.max_queue_delay_ms = " +
                        std::to_string(cfg_.max_queue_delay_ms) + " ms for their first token); retry later",
                    {}, "overloaded");
  }

  // Admission beyond the gateway: a bounded number of requests per engine.
  bool try_reserve() {
    const int cap = cfg_.max_queue + cfg_.max_num_seqs;
    int cur = active_.load();
    while (cur < cap) {
      if (active_.compare_exchange_weak(cur, cur + 1)) return true;
    }
    return false;
  }

  asio::awaitable<void> generate(net::HttpExchange& ex, Endpoint endpoint) {
    const unsigned version = ex.request().version();
    if (!ready()) {
      co_return co_await ex.respond(error_response(
          ApiError(503, "the model is not loaded (starting or stopping)", {}, "model_loading"),
          version));
    }
    if (overloaded(ex.context().priority)) {
      shed_->inc();
      co_return co_await ex.respond(error_response(overloaded_error(), version));
    }
    if (!try_reserve()) {
      queue_full_->inc();
      co_return co_await ex.respond(error_response(
          ApiError(503, "the LLM queue is full; retry later", {}, "queue_full"), version));
    }
    // Held until the generation finishes (for a stream, past the end of this handler).
    auto reservation = std::make_shared<Reservation>(active_);

    api::ParsedRequest req;
    GenerationRequest greq;
    std::optional<ApiError> error;
    try {
      req = api::parse_request(endpoint, ex.request().body(), cfg_.default_max_tokens);
      if (!req.model.empty() && req.model != cfg_.name) {
        throw ApiError(404, "The model '" + req.model + "' does not exist", "model",
                       "model_not_found", "invalid_request_error");
      }
      // Templating and tokenizing cost time proportional to the prompt: off the I/O thread.
      const int priority = ex.context().priority;
      auto prepare = [this, &req, priority]() -> asio::awaitable<GenerationRequest> {
        co_return build(req, priority);
      };
      greq = co_await asio::co_spawn(prep_pool_.get_executor(), std::move(prepare),
                                     asio::use_awaitable);
    } catch (const ApiError& e) {
      error = e;
    }
    if (error) co_return co_await ex.respond(error_response(*error, version));

    api::ResponseMeta meta{api::make_response_id(endpoint), unix_now(), cfg_.name};
    if (req.stream) {
      co_await stream(ex, req, std::move(greq), meta, std::move(reservation));
    } else {
      co_await complete(ex, req, std::move(greq), meta);
    }
  }

  // A submit() refusal after validation: the engine is stopping (503) or the input is bad.
  ApiError submit_error(const std::string& why) const {
    if (!ready()) return ApiError(503, "the server is shutting down", {}, "shutting_down");
    return ApiError(400, why);
  }

  asio::awaitable<void> complete(net::HttpExchange& ex, const api::ParsedRequest& req,
                                 GenerationRequest greq, const api::ResponseMeta& meta) {
    const unsigned version = ex.request().version();
    auto collector = std::make_shared<ResultCollector>(*tokenizer_, req.want_logprobs,
                                                       greq.prompt.back());
    greq.on_event = logged(ex.context().trace_id, [collector](GenerationEvent&& ev) {
      collector->on_event(std::move(ev));
    });
    Engine* engine = engine_.get();
    SubmitResult r = engine->submit(std::move(greq));
    if (!r) co_return co_await ex.respond(error_response(submit_error(r.error), version));
    const RequestId id = r.id;
    ex.watch_disconnect([engine, id] { engine->cancel(id); });
    // The collector calls back once, from the engine thread (or at once if already done).
    // Named, not a temporary in the co_await expression: GCC 12 destroys such temporaries
    // twice, which dropped `collector` one reference too many.
    auto start = [collector](auto done) { collector->set_done(std::move(done)); };
    auto outcome =
        co_await net::await_callback<std::shared_ptr<CollectedResult>>(std::move(start));
    const api::CompletionResult& result = outcome->result;
    if (result.reason == FinishReason::error) {
      co_return co_await ex.respond(
          error_response(ApiError(500, "generation failed: " + result.message), version));
    }
    if (result.reason == FinishReason::cancelled) {
      co_return co_await ex.respond(error_response(
          ApiError(503, "generation cancelled: " + result.message, {}, "cancelled"), version));
    }
    co_await ex.respond(net::make_json(
        http::status::ok, api::dump_json(api::completion_response(req, meta, result)), version));
  }

  asio::awaitable<void> stream(net::HttpExchange& ex, const api::ParsedRequest& req,
                               GenerationRequest greq, const api::ResponseMeta& meta,
                               std::shared_ptr<Reservation> reservation) {
    auto writer = co_await ex.start_stream("text/event-stream");
    auto state = std::make_shared<GenerationStream>(writer, req, meta, *tokenizer_,
                                                    greq.prompt.back(), std::move(reservation));
    Engine* engine = engine_.get();
    auto id = std::make_shared<std::atomic<RequestId>>(0);
    // Callbacks first: the engine may produce tokens as soon as submit() returns.
    // The writer owns the stream until its last message is out (the engine lets go at the
    // finish event); StreamWriter::run() drops its callbacks at the end, breaking the cycle.
    writer->set_on_drain([state] { state->flush(); });
    writer->set_on_disconnect([engine, id] {
      if (RequestId r = id->load()) engine->cancel(r);
    });
    state->start();
    greq.on_event = logged(ex.context().trace_id,
                           [state](GenerationEvent&& ev) { state->on_event(std::move(ev)); });
    SubmitResult r = engine->submit(std::move(greq));
    if (!r) {
      state->fail(submit_error(r.error));
      co_return;
    }
    id->store(r.id);
    // A disconnect noticed before the id was stored: cancel now.
    if (writer->closed() && !state->finished()) engine->cancel(r.id);
    // The connection drains the writer after this handler returns.
  }

  app::LlmSection cfg_;
  std::string models_dir_;
  obs::MetricsRegistry& metrics_;
  obs::Counter* shed_;        // talkserve_queue_rejected_total{executor="llm",reason="overloaded"}
  obs::Counter* queue_full_;  // ... reason="queue_full"
  std::int64_t created_ = unix_now();
  std::unique_ptr<ModelRunner> runner_;
  std::unique_ptr<Tokenizer> tokenizer_;
  ChatTemplate template_;
  std::unique_ptr<LlmObserver> observer_;
  std::unique_ptr<Engine> engine_;
  std::atomic<bool> ready_{false};
  std::atomic<int> active_{0};
  std::mutex stop_mutex_;
  boost::asio::thread_pool prep_pool_{1};  // chat templating and tokenizing
};

}  // namespace

std::unique_ptr<app::Service> make_llm_service(const app::AppConfig& config,
                                               obs::MetricsRegistry& metrics) {
  return std::make_unique<LlmService>(config, metrics);
}

ChatBackend* chat_backend_of(app::Service& service) {
  return dynamic_cast<ChatBackend*>(&service);
}

}  // namespace talkserve::llm
