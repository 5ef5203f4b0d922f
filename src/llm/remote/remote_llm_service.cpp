#include "talkserve/llm/remote_llm_service.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdlib>

#include "talkserve/llm/remote_chat_backend.hpp"
#include "talkserve/net/api_error.hpp"
#include "talkserve/net/router.hpp"

namespace talkserve::llm {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;

RemoteChatConfig backend_config(const app::LlmRemoteSection& s) {
  RemoteChatConfig c;
  c.url = s.url;
  c.api_key = s.api_key;
  if (!s.api_key_env.empty()) {
    const char* v = std::getenv(s.api_key_env.c_str());
    c.api_key = v ? v : "";
  }
  c.model = s.model;
  c.context_length = s.context_length;
  c.connect_timeout = std::chrono::milliseconds(s.connect_timeout_ms);
  c.timeout = std::chrono::milliseconds(s.timeout_ms);
  c.idle_timeout = std::chrono::milliseconds(s.idle_timeout_ms);
  c.max_retries = s.max_retries;
  c.backoff = std::chrono::milliseconds(s.backoff_ms);
  c.max_backoff = std::chrono::milliseconds(s.max_backoff_ms);
  c.ca_file = s.ca_file;
  c.keepalive = std::chrono::milliseconds(s.keepalive_ms);
  c.max_idle_connections = static_cast<std::size_t>(s.max_idle_connections);
  return c;
}

class RemoteLlmService final : public app::Service, public ChatBackend {
 public:
  RemoteLlmService(const app::AppConfig& config, obs::MetricsRegistry& metrics)
      : probe_(config.llm.remote.probe),
        backend_(backend_config(config.llm.remote), &metrics) {}

  std::string name() const override { return "llm"; }

  void register_routes(net::Router& router) override {
    for (const char* path : {"/v1/chat/completions", "/v1/completions"}) {
      net::RouteOptions o;
      o.name = path;
      router.add(http::verb::post, path,
                 [](net::HttpExchange& ex) -> asio::awaitable<void> {
                   co_await ex.respond(net::error_response(
                       net::ApiError(404,
                                     "this server's LLM is remote (llm.backend = \"remote\"): "
                                     "it serves POST /v1/talk and GET /v1/stream, not the "
                                     "OpenAI LLM routes; send those to the upstream LLM server",
                                     {}, "llm_is_remote"),
                       ex.request().version()));
                 },
                 o);
    }
    net::RouteOptions m;
    m.name = "/v1/models";
    router.add(http::verb::get, "/v1/models",
               [](net::HttpExchange& ex) -> asio::awaitable<void> {
                 const std::string body = R"({"object":"list","data":[]})";
                 co_await ex.respond(
                     net::make_json(http::status::ok, body, ex.request().version()));
               },
               m);
  }

  void start() override {
    if (probe_) backend_.probe();
    spdlog::info("llm: remote backend, model {} at {} (context {} tokens{})",
                 backend_.model_name(), backend_.upstream(), backend_.context_length(),
                 probe_ ? ", probed" : "");
    ready_.store(true);
  }

  bool ready() const override { return ready_.load() && backend_.chat_ready(); }

  void stop() override {
    ready_.store(false);
    backend_.stop();
  }

  // ChatBackend: the remote backend's.
  bool chat_ready() const override { return ready(); }
  std::string model_name() const override { return backend_.model_name(); }
  int context_length() const override { return backend_.context_length(); }
  int count_prompt_tokens(const std::vector<ChatMessage>& messages) const override {
    return backend_.count_prompt_tokens(messages);
  }
  RequestId chat(const std::vector<ChatMessage>& messages, const ChatOptions& options,
                 std::function<void(std::string)> on_text,
                 std::function<void(ChatOutcome)> on_done) override {
    if (!ready_.load()) throw ChatRefused(503, "the LLM backend is not started (or stopping)");
    return backend_.chat(messages, options, std::move(on_text), std::move(on_done));
  }
  void cancel(RequestId id) override { backend_.cancel(id); }

 private:
  bool probe_;
  RemoteChatBackend backend_;
  std::atomic<bool> ready_{false};
};

}  // namespace

std::unique_ptr<app::Service> make_remote_llm_service(const app::AppConfig& config,
                                                      obs::MetricsRegistry& metrics) {
  return std::make_unique<RemoteLlmService>(config, metrics);
}

}  // namespace talkserve::llm
