#include "talkserve/llm/remote_chat_backend.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <nlohmann/json.hpp>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cerrno>

#include <algorithm>
#include <atomic>
#include <limits>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <type_traits>
#include <unordered_map>

#include "talkserve/llm/remote_protocol.hpp"
#include "talkserve/obs/metrics.hpp"

namespace talkserve::llm {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using nlohmann::json;
using asio::redirect_error;
using asio::use_awaitable;

// Upstream error bodies are read for their message only.
constexpr std::size_t kMaxErrorBody = 64 * 1024;

// Why an attempt did not produce a complete reply.
struct Failure {
  int status = 502;         // for our client
  std::string message;      // names the upstream
  bool retryable = false;   // worth another attempt if no text went out yet
  std::optional<std::chrono::milliseconds> retry_after;
  std::string outcome;      // metric label
};

// One chat() from submit to on_done. Fields are touched on the I/O thread only.
struct Call {
  RequestId id = 0;
  std::string body;
  std::function<void(std::string)> on_text;
  std::function<void(ChatOutcome)> on_done;
  bool cancelled = false;
  std::string cancel_reason;
  bool delivered = false;                  // text went out: a retry would repeat it
  beast::tcp_stream* socket = nullptr;     // the current attempt's connection, for cancel
  std::optional<asio::steady_timer> backoff;
  std::optional<FinishReason> finish;
  Usage usage;
};

std::string ms_text(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }

using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// A kept-alive connection between two replies.
template <typename Stream>
struct IdleConnection {
  std::unique_ptr<Stream> stream;
  std::chrono::steady_clock::time_point since;
};

// What one request/response exchange on a connection left behind.
struct Exchange {
  bool head = false;      // a response head arrived (the upstream took the request)
  bool reusable = false;  // the response ended cleanly and the upstream keeps the connection
};

// False when the peer has closed the connection (or sent something unasked, e.g. a TLS alert):
// a non-blocking peek that finds nothing to read means it is still open and idle.
bool idle_and_open(tcp::socket& socket) {
  char c = 0;
  const ssize_t n = ::recv(socket.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

// Clears Call::socket when the attempt's stream goes away.
struct SocketSlot {
  SocketSlot(Call& c, beast::tcp_stream& s) : call(c) { call.socket = &s; }
  ~SocketSlot() { call.socket = nullptr; }
  SocketSlot(const SocketSlot&) = delete;
  SocketSlot& operator=(const SocketSlot&) = delete;
  Call& call;
};

}  // namespace

struct RemoteChatBackend::Impl {
  RemoteChatConfig cfg;
  remote::UpstreamUrl url;
  asio::io_context ioc;
  ssl::context tls{ssl::context::tls_client};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread thread;
  std::atomic<bool> stopping{false};
  std::atomic<RequestId> next_id{1};
  std::mutex mutex;  // guards calls
  std::unordered_map<RequestId, std::shared_ptr<Call>> calls;
  std::mt19937_64 rng{std::random_device{}()};  // I/O thread only
  // Kept-alive connections, most recently used last; the I/O thread only. Declared after
  // `tls` and `ioc`, which they use.
  std::vector<IdleConnection<PlainStream>> idle_plain;
  std::vector<IdleConnection<TlsStream>> idle_tls;
  obs::MetricsRegistry* metrics = nullptr;
  obs::Counter* retries = nullptr;
  obs::Counter* connections_new = nullptr;
  obs::Counter* connections_reused = nullptr;
  obs::Counter* connections_stale = nullptr;
  obs::Gauge* running = nullptr;
  std::mutex stop_mutex;

  Impl(RemoteChatConfig c, obs::MetricsRegistry* m)
      : cfg(std::move(c)), url(remote::parse_upstream_url(cfg.url)), metrics(m) {
    tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                    ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    tls.set_verify_mode(ssl::verify_peer);
    try {
      if (cfg.ca_file.empty()) {
        tls.set_default_verify_paths();
      } else {
        tls.load_verify_file(cfg.ca_file);
      }
    } catch (const boost::system::system_error& e) {
      throw std::invalid_argument("llm.remote.ca_file: cannot load '" + cfg.ca_file +
                                  "' as PEM certificates (" + e.code().message() + ")");
    }
    if (metrics) {
      retries = &metrics->counter("talkserve_llm_remote_retries_total",
                                  "Attempts the remote LLM backend repeated after a failure "
                                  "before any text arrived");
      running = &metrics->gauge("talkserve_llm_remote_requests_running",
                                "Chat requests streaming from the remote LLM upstream");
      auto conn = [this](const char* how) {
        return &metrics->counter("talkserve_llm_remote_connections_total",
                                 "Connections the remote LLM backend sent a chat request on: "
                                 "new, reused (kept alive), or stale (reused, but the upstream "
                                 "had closed it; the request went on another)",
                                 {{"how", how}});
      };
      connections_new = conn("new");
      connections_reused = conn("reused");
      connections_stale = conn("stale");
      for (const char* o : {"ok", "cancelled", "upstream_error", "unreachable", "timeout",
                            "tls_error", "protocol_error"}) {
        count(o, 0);  // every outcome series exists from the start (rates need a zero)
      }
    }
    work.emplace(ioc.get_executor());
    thread = std::thread([this] { ioc.run(); });
  }

  void count(const std::string& outcome, double n = 1) {
    if (!metrics) return;
    metrics
        ->counter("talkserve_llm_remote_requests_total",
                  "Chat requests to the remote LLM upstream, by how they ended",
                  {{"outcome", outcome}})
        .inc(n);
  }

  void stop() {
    std::lock_guard lock(stop_mutex);
    stopping.store(true);
    if (!thread.joinable()) return;
    asio::post(ioc, [this] {
      std::vector<std::shared_ptr<Call>> all;
      {
        std::lock_guard l(mutex);
        for (auto& [id, c] : calls) all.push_back(c);
      }
      for (auto& c : all) abort(*c, "the server is stopping");
      idle_plain.clear();
      idle_tls.clear();
    });
    work.reset();
    thread.join();
  }

  // On the I/O thread.
  void abort(Call& call, std::string reason) {
    if (call.cancelled) return;
    call.cancelled = true;
    call.cancel_reason = std::move(reason);
    if (call.socket) {
      // Closing (not just cancelling) makes the upstream see the disconnect and stop.
      beast::error_code ec;
      call.socket->socket().shutdown(tcp::socket::shutdown_both, ec);
      call.socket->close();
    }
    if (call.backoff) call.backoff->cancel();
  }

  void finish(Call& call, ChatOutcome outcome, const std::string& label) {
    std::shared_ptr<Call> keep;
    {
      std::lock_guard lock(mutex);
      auto it = calls.find(call.id);
      if (it != calls.end()) {
        keep = it->second;
        calls.erase(it);
      }
    }
    count(label);
    if (running) running->dec();
    auto done = std::move(call.on_done);
    call.on_text = nullptr;
    try {
      if (done) done(std::move(outcome));
    } catch (const std::exception& e) {
      spdlog::error("llm.remote: a reply's completion callback threw: {}", e.what());
    }
  }

  std::string chat_body(const std::vector<ChatMessage>& messages, const ChatOptions& o) const {
    json msgs = json::array();
    for (const auto& m : messages) msgs.push_back({{"role", m.role}, {"content", m.content}});
    json body = {{"model", cfg.model},
                 {"messages", std::move(msgs)},
                 {"stream", true},
                 {"stream_options", {{"include_usage", true}}},
                 {"max_tokens", o.max_tokens},
                 {"temperature", o.temperature}};
    if (o.seed) body["seed"] = *o.seed;
    return body.dump();
  }

  // keep_alive false: "Connection: close" (the probe, or keepalive = 0). Either way a closed
  // socket is how cancel() tells the upstream to stop generating.
  template <typename Body>
  void set_common_headers(http::request<Body>& req, bool keep_alive) const {
    req.set(http::field::host, url.host_header());
    req.set(http::field::user_agent, "talkserve");
    if (!keep_alive) req.set(http::field::connection, "close");
    if (!cfg.api_key.empty()) req.set(http::field::authorization, "Bearer " + cfg.api_key);
  }

  bool keep_alive() const { return cfg.keepalive.count() > 0 && cfg.max_idle_connections > 0; }

  template <typename Stream>
  std::vector<IdleConnection<Stream>>& idle() {
    if constexpr (std::is_same_v<Stream, PlainStream>) {
      return idle_plain;
    } else {
      return idle_tls;
    }
  }

  template <typename Stream>
  std::unique_ptr<Stream> new_stream(const asio::any_io_executor& ex) {
    if constexpr (std::is_same_v<Stream, PlainStream>) {
      return std::make_unique<PlainStream>(ex);
    } else {
      return std::make_unique<TlsStream>(ex, tls);
    }
  }

  // The most recently used idle connection that is young enough and still open, or null.
  template <typename Stream>
  std::unique_ptr<Stream> take_idle() {
    auto& pool = idle<Stream>();
    const auto now = std::chrono::steady_clock::now();
    while (!pool.empty()) {
      IdleConnection<Stream> c = std::move(pool.back());
      pool.pop_back();
      if (now - c.since < cfg.keepalive &&
          idle_and_open(beast::get_lowest_layer(*c.stream).socket())) {
        return std::move(c.stream);
      }
    }
    return nullptr;
  }

  template <typename Stream>
  void put_idle(std::unique_ptr<Stream> stream) {
    if (!keep_alive() || stopping.load()) return;
    auto& pool = idle<Stream>();
    if (pool.size() >= cfg.max_idle_connections) pool.erase(pool.begin());
    pool.push_back({std::move(stream), std::chrono::steady_clock::now()});
  }

  Failure transport_failure(const std::string& step, const beast::error_code& ec,
                            std::chrono::milliseconds limit, const char* limit_key) const {
    Failure f;
    f.retryable = true;
    if (ec == beast::error::timeout) {
      f.status = 504;
      f.outcome = "timeout";
      f.message = "LLM upstream " + url.origin() + ": " + step + " timed out after " +
                  ms_text(limit) + " (llm.remote." + limit_key + ")";
    } else {
      f.status = 502;
      f.outcome = "unreachable";
      f.message = "LLM upstream " + url.origin() + ": " + step + " failed: " + ec.message();
    }
    return f;
  }

  // Connects (and handshakes, for https) within connect_timeout.
  template <typename Stream>
  asio::awaitable<std::optional<Failure>> connect(Stream& stream,
                                                  const tcp::resolver::results_type& endpoints) {
    auto& socket = beast::get_lowest_layer(stream);
    beast::error_code ec;
    socket.expires_after(cfg.connect_timeout);
    co_await socket.async_connect(endpoints, redirect_error(use_awaitable, ec));
    if (ec) co_return transport_failure("connecting", ec, cfg.connect_timeout, "connect_timeout_ms");
    // A request is small writes (TLS records, head and body): without this, Nagle holds the
    // last one until the upstream's delayed ACK (40 ms) on a kept-alive connection.
    socket.socket().set_option(tcp::no_delay(true), ec);
    if constexpr (!std::is_same_v<Stream, beast::tcp_stream>) {
      boost::system::error_code addr_ec;
      asio::ip::make_address(url.host, addr_ec);
      // SNI carries names only (RFC 6066); the certificate is checked against the name or IP.
      if (addr_ec && !SSL_set_tlsext_host_name(stream.native_handle(), url.host.c_str())) {
        co_return Failure{502, "LLM upstream " + url.origin() + ": cannot set the TLS server name",
                          false, std::nullopt, "tls_error"};
      }
      // The chain may verify and still belong to another name: say which one failed.
      bool wrong_name = false;
      stream.set_verify_callback([&wrong_name, check = ssl::host_name_verification(url.host)](
                                     bool preverified, ssl::verify_context& ctx) mutable {
        const bool ok = check(preverified, ctx);
        if (preverified && !ok) wrong_name = true;
        return ok;
      });
      co_await stream.async_handshake(ssl::stream_base::client, redirect_error(use_awaitable, ec));
      // The callback above refers to this frame's `wrong_name`: a kept-alive connection must
      // not keep it.
      stream.set_verify_callback(ssl::host_name_verification(url.host));
      if (ec) {
        if (ec == beast::error::timeout) {
          co_return transport_failure("the TLS handshake", ec, cfg.connect_timeout,
                                      "connect_timeout_ms");
        }
        std::string why = ec.message();
        const long verify = SSL_get_verify_result(stream.native_handle());
        if (wrong_name) {
          why += " (the certificate is not valid for " + url.host + ")";
        } else if (verify != X509_V_OK) {
          why += " (" + std::string(X509_verify_cert_error_string(verify)) +
                 "; llm.remote.ca_file names the CA to trust)";
        }
        // A certificate that does not verify will not verify on the next attempt either.
        co_return Failure{502, "LLM upstream " + url.origin() + ": TLS handshake failed: " + why,
                          false, std::nullopt, "tls_error"};
      }
    }
    co_return std::nullopt;
  }

  // Reads what is left of an error response's body (bounded) for its message.
  template <typename Stream>
  asio::awaitable<std::string> read_error_body(Stream& stream, beast::flat_buffer& buffer,
                                               http::response_parser<http::buffer_body>& parser) {
    std::string body;
    char chunk[4096];
    while (!parser.is_done() && body.size() < kMaxErrorBody) {
      parser.get().body().data = chunk;
      parser.get().body().size = sizeof chunk;
      beast::error_code ec;
      beast::get_lowest_layer(stream).expires_after(cfg.timeout);
      co_await http::async_read_some(stream, buffer, parser, redirect_error(use_awaitable, ec));
      if (ec == http::error::need_buffer) ec = {};
      body.append(chunk, sizeof chunk - parser.get().body().size);
      if (ec) break;
    }
    co_return body;
  }

  Failure status_failure(int status, const std::string& body,
                         const http::response_parser<http::buffer_body>& parser) const {
    Failure f;
    f.status = remote::client_status_for(status);
    f.retryable = remote::retryable_status(status);
    f.outcome = "upstream_error";
    const auto& head = parser.get();
    if (auto it = head.find(http::field::retry_after); it != head.end()) {
      f.retry_after = remote::parse_retry_after(it->value(), std::chrono::system_clock::now());
    }
    std::string reason(head.reason());
    f.message = "LLM upstream " + url.origin() + " answered " + std::to_string(status) +
                (reason.empty() ? "" : " " + reason) + ": " + remote::upstream_error_message(body);
    return f;
  }

  // One `data:` payload of the chat stream; a Failure for an error event.
  std::optional<Failure> on_event(Call& call, const std::string& data) {
    json j = json::parse(data, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      return Failure{502, "LLM upstream " + url.origin() + " sent an event that is not a JSON "
                          "object: " + data.substr(0, 200),
                     false, std::nullopt, "protocol_error"};
    }
    if (auto e = j.find("error"); e != j.end() && !e->is_null()) {
      return Failure{502, "LLM upstream " + url.origin() + " reported an error mid-stream: " +
                          remote::upstream_error_message(data),
                     true, std::nullopt, "upstream_error"};
    }
    if (auto u = j.find("usage"); u != j.end() && u->is_object()) {
      call.usage.prompt_tokens = u->value("prompt_tokens", call.usage.prompt_tokens);
      call.usage.completion_tokens = u->value("completion_tokens", call.usage.completion_tokens);
    }
    auto choices = j.find("choices");
    if (choices == j.end() || !choices->is_array() || choices->empty()) return std::nullopt;
    const json& c = (*choices)[0];
    if (!c.is_object()) return std::nullopt;
    if (auto d = c.find("delta"); d != c.end() && d->is_object()) {
      if (auto t = d->find("content"); t != d->end() && t->is_string()) {
        std::string text = t->get<std::string>();
        if (!text.empty() && !call.cancelled && call.on_text) {
          call.delivered = true;
          call.on_text(std::move(text));
        }
      }
    }
    if (auto fr = c.find("finish_reason"); fr != c.end() && fr->is_string()) {
      call.finish = fr->get<std::string>() == "length" ? FinishReason::length : FinishReason::stop;
    }
    return std::nullopt;
  }

  // Sends the chat request on a connected stream and relays its events; `x` says whether the
  // upstream answered at all and whether the connection can carry the next request.
  template <typename Stream>
  asio::awaitable<std::optional<Failure>> stream_chat(Stream& stream, Call& call, Exchange& x) {
    auto& socket = beast::get_lowest_layer(stream);
    http::request<http::string_body> req{http::verb::post, url.target("/v1/chat/completions"), 11};
    set_common_headers(req, keep_alive());
    req.set(http::field::content_type, "application/json");
    req.set(http::field::accept, "text/event-stream");
    req.body() = call.body;
    req.prepare_payload();
    beast::error_code ec;
    socket.expires_after(cfg.timeout);
    co_await http::async_write(stream, req, redirect_error(use_awaitable, ec));
    if (ec) co_return transport_failure("sending the request", ec, cfg.timeout, "timeout_ms");

    beast::flat_buffer buffer;
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());  // a stream; idle-bounded
    co_await http::async_read_header(stream, buffer, parser, redirect_error(use_awaitable, ec));
    if (ec) co_return transport_failure("waiting for the response", ec, cfg.timeout, "timeout_ms");
    x.head = true;
    const int status = static_cast<int>(parser.get().result_int());
    if (status != 200) {
      const std::string body = co_await read_error_body(stream, buffer, parser);
      co_return status_failure(status, body, parser);
    }

    remote::SseParser sse;
    char chunk[16 * 1024];
    bool done = false;
    bool first = true;
    while (!done && !parser.is_done()) {
      parser.get().body().data = chunk;
      parser.get().body().size = sizeof chunk;
      // The first event may wait for the upstream's queue and prefill; later ones are tokens.
      socket.expires_after(first ? cfg.timeout : cfg.idle_timeout);
      co_await http::async_read_some(stream, buffer, parser, redirect_error(use_awaitable, ec));
      if (ec == http::error::need_buffer) ec = {};
      const std::size_t n = sizeof chunk - parser.get().body().size;
      if (n > 0) first = false;
      for (auto& data : sse.feed(std::string_view(chunk, n))) {
        if (data == "[DONE]") {
          done = true;
          break;
        }
        if (auto f = on_event(call, data)) co_return f;
      }
      if (ec && !done) {
        co_return first ? transport_failure("waiting for the first token", ec, cfg.timeout, "timeout_ms")
                        : transport_failure("reading the stream", ec, cfg.idle_timeout,
                                            "idle_timeout_ms");
      }
    }
    if (!done && !call.finish) {
      co_return Failure{502, "LLM upstream " + url.origin() + " ended the stream before [DONE]",
                        true, std::nullopt, "protocol_error"};
    }
    // The end of the body (a chunked stream's last chunk) normally comes with [DONE]; read it
    // briefly so the connection can be reused (a close-delimited body cannot be: no wait).
    // Nothing after [DONE] is an event.
    if (done && keep_alive() && parser.keep_alive() && !call.cancelled) {
      const auto limit =
          std::min<std::chrono::milliseconds>(cfg.idle_timeout, std::chrono::milliseconds(500));
      while (!parser.is_done()) {
        parser.get().body().data = chunk;
        parser.get().body().size = sizeof chunk;
        socket.expires_after(limit);
        co_await http::async_read_some(stream, buffer, parser, redirect_error(use_awaitable, ec));
        if (ec == http::error::need_buffer) ec = {};
        if (ec) break;
      }
      x.reusable = !ec && parser.is_done() && parser.keep_alive() && buffer.size() == 0;
    }
    co_return std::nullopt;
  }

  asio::awaitable<std::optional<Failure>> resolve(tcp::resolver::results_type& out) {
    auto ex = co_await asio::this_coro::executor;
    tcp::resolver resolver(ex);
    beast::error_code ec;
    const std::string port = std::to_string(url.port);
    out = co_await resolver.async_resolve(url.host, port, redirect_error(use_awaitable, ec));
    if (ec) {
      co_return Failure{502, "LLM upstream " + url.origin() + ": cannot resolve " + url.host +
                                 ": " + ec.message(),
                        true, std::nullopt, "unreachable"};
    }
    co_return std::nullopt;
  }

  // The request on a kept-alive connection.
  template <typename Stream>
  asio::awaitable<std::optional<Failure>> exchange_on(Stream& stream, Call& call, Exchange& x) {
    SocketSlot slot(call, beast::get_lowest_layer(stream));
    if (call.cancelled) co_return std::nullopt;
    co_return co_await stream_chat(stream, call, x);
  }

  // A new connection, then the request.
  template <typename Stream>
  asio::awaitable<std::optional<Failure>> connect_and_exchange(
      Stream& stream, Call& call, const tcp::resolver::results_type& eps, Exchange& x) {
    SocketSlot slot(call, beast::get_lowest_layer(stream));
    if (call.cancelled) co_return std::nullopt;
    if (auto f = co_await connect(stream, eps)) co_return f;
    if (call.cancelled) co_return std::nullopt;
    if (connections_new) connections_new->inc();
    co_return co_await stream_chat(stream, call, x);
  }

  template <typename Stream>
  asio::awaitable<std::optional<Failure>> attempt_with(Call& call) {
    while (auto stream = take_idle<Stream>()) {
      Exchange x;
      std::optional<Failure> f = co_await exchange_on(*stream, call, x);
      // Closed by the upstream just now (reset, end of stream): not its answer to this
      // request, so not an attempt. A timeout is not that: the upstream may just be busy.
      if (f && !x.head && !call.delivered && !call.cancelled && f->outcome == "unreachable") {
        if (connections_stale) connections_stale->inc();
        continue;
      }
      if (connections_reused) connections_reused->inc();
      if (!f && x.reusable && !call.cancelled) put_idle(std::move(stream));
      co_return f;
    }
    tcp::resolver::results_type endpoints;
    if (auto f = co_await resolve(endpoints)) co_return f;
    const auto ex = co_await asio::this_coro::executor;
    auto stream = new_stream<Stream>(ex);
    Exchange x;
    std::optional<Failure> f = co_await connect_and_exchange(*stream, call, endpoints, x);
    if (!f && x.reusable && !call.cancelled) put_idle(std::move(stream));
    co_return f;
  }

  asio::awaitable<std::optional<Failure>> attempt(Call& call) {
    if (url.tls) co_return co_await attempt_with<TlsStream>(call);
    co_return co_await attempt_with<PlainStream>(call);
  }

  asio::awaitable<void> run(std::shared_ptr<Call> call) {
    std::optional<Failure> last;
    int attempts = 0;
    for (;;) {
      if (call->cancelled) break;
      ++attempts;
      std::optional<Failure> f;
      try {
        f = co_await attempt(*call);
      } catch (const std::exception& e) {
        f = Failure{502, "LLM upstream " + url.origin() + ": " + e.what(), false, std::nullopt,
                    "protocol_error"};
      }
      if (call->cancelled) break;
      if (!f) {
        ChatOutcome o;
        o.reason = call->finish.value_or(FinishReason::stop);
        o.usage = call->usage;
        finish(*call, std::move(o), "ok");
        co_return;
      }
      last = std::move(f);
      if (!last->retryable || call->delivered || attempts > cfg.max_retries || stopping.load()) {
        break;
      }
      std::uniform_real_distribution<double> unit(0.0, 1.0);
      auto delay = remote::backoff_delay(attempts, cfg.backoff, cfg.max_backoff, unit(rng));
      if (last->retry_after) {
        if (*last->retry_after > cfg.max_backoff) {
          last->message += " (Retry-After " + ms_text(*last->retry_after) +
                           " is longer than llm.remote.max_backoff_ms; not retried)";
          break;
        }
        delay = std::max(delay, *last->retry_after);
      }
      spdlog::warn("llm.remote: {}; retry {} of {} in {}", last->message, attempts,
                   cfg.max_retries, ms_text(delay));
      if (retries) retries->inc();
      call->backoff.emplace(co_await asio::this_coro::executor);
      call->backoff->expires_after(delay);
      beast::error_code ec;
      co_await call->backoff->async_wait(redirect_error(use_awaitable, ec));
      call->backoff.reset();
    }
    ChatOutcome o;
    o.usage = call->usage;
    if (call->cancelled) {
      o.reason = FinishReason::cancelled;
      o.message = call->cancel_reason;
      finish(*call, std::move(o), "cancelled");
      co_return;
    }
    o.reason = FinishReason::error;
    o.status = last->status;
    o.message = last->message;
    if (attempts > 1) o.message += " (after " + std::to_string(attempts) + " attempts)";
    spdlog::warn("llm.remote: request failed: {}", o.message);
    const std::string label = last->outcome;
    finish(*call, std::move(o), label);
  }

  // GET /v1/models: "" when the upstream answers and lists the model, else why not.
  asio::awaitable<std::string> probe_models() {
    tcp::resolver::results_type endpoints;
    if (auto f = co_await resolve(endpoints)) co_return f->message;
    auto ex = co_await asio::this_coro::executor;
    if (url.tls) {
      beast::ssl_stream<beast::tcp_stream> stream(ex, tls);
      co_return co_await probe_on(stream, endpoints);
    }
    beast::tcp_stream stream(ex);
    co_return co_await probe_on(stream, endpoints);
  }

  template <typename Stream>
  asio::awaitable<std::string> probe_on(Stream& stream, const tcp::resolver::results_type& eps) {
    if (auto f = co_await connect(stream, eps)) co_return f->message;
    http::request<http::empty_body> req{http::verb::get, url.target("/v1/models"), 11};
    set_common_headers(req, false);
    beast::error_code ec;
    beast::get_lowest_layer(stream).expires_after(cfg.timeout);
    co_await http::async_write(stream, req, redirect_error(use_awaitable, ec));
    if (ec) co_return transport_failure("sending GET /v1/models", ec, cfg.timeout, "timeout_ms").message;
    beast::flat_buffer buffer;
    http::response_parser<http::buffer_body> parser;
    co_await http::async_read_header(stream, buffer, parser, redirect_error(use_awaitable, ec));
    if (ec) co_return transport_failure("GET /v1/models", ec, cfg.timeout, "timeout_ms").message;
    const int status = static_cast<int>(parser.get().result_int());
    const std::string body = co_await read_error_body(stream, buffer, parser);
    if (status != 200) co_return status_failure(status, body, parser).message;
    json j = json::parse(body, nullptr, false);
    std::vector<std::string> ids;
    if (j.is_object() && j.contains("data") && j["data"].is_array()) {
      for (const auto& m : j["data"]) {
        if (m.is_object() && m.contains("id") && m["id"].is_string()) ids.push_back(m["id"]);
      }
    } else {
      co_return "LLM upstream " + url.origin() + ": GET /v1/models is not an OpenAI model list";
    }
    if (std::find(ids.begin(), ids.end(), cfg.model) != ids.end()) co_return std::string();
    std::string listed;
    for (const auto& id : ids) listed += (listed.empty() ? "" : ", ") + id;
    co_return "LLM upstream " + url.origin() + " does not serve llm.remote.model \"" + cfg.model +
        "\" (it lists: " + (listed.empty() ? "nothing" : listed) + ")";
  }
};

RemoteChatBackend::RemoteChatBackend(RemoteChatConfig config, obs::MetricsRegistry* metrics)
    : impl_(std::make_shared<Impl>(std::move(config), metrics)) {}

RemoteChatBackend::~RemoteChatBackend() { stop(); }

void RemoteChatBackend::stop() { impl_->stop(); }

void RemoteChatBackend::probe() {
  if (impl_->stopping.load()) throw std::runtime_error("the remote LLM backend is stopped");
  auto future = boost::asio::co_spawn(impl_->ioc, impl_->probe_models(), boost::asio::use_future);
  const std::string why = future.get();
  if (!why.empty()) throw std::runtime_error(why);
}

bool RemoteChatBackend::chat_ready() const { return !impl_->stopping.load(); }
std::string RemoteChatBackend::model_name() const { return impl_->cfg.model; }
int RemoteChatBackend::context_length() const { return impl_->cfg.context_length; }
std::string RemoteChatBackend::upstream() const { return impl_->url.origin(); }

int RemoteChatBackend::count_prompt_tokens(const std::vector<ChatMessage>& messages) const {
  return remote::estimate_prompt_tokens(messages);
}

RequestId RemoteChatBackend::chat(const std::vector<ChatMessage>& messages,
                                  const ChatOptions& options,
                                  std::function<void(std::string)> on_text,
                                  std::function<void(ChatOutcome)> on_done) {
  Impl& im = *impl_;
  if (im.stopping.load()) throw ChatRefused(503, "the LLM backend is stopping");
  auto call = std::make_shared<Call>();
  call->id = im.next_id.fetch_add(1);
  call->body = im.chat_body(messages, options);
  call->on_text = std::move(on_text);
  call->on_done = std::move(on_done);
  {
    std::lock_guard lock(im.mutex);
    im.calls.emplace(call->id, call);
  }
  if (im.stopping.load()) {  // stop() began meanwhile and may not see this call
    std::lock_guard lock(im.mutex);
    im.calls.erase(call->id);
    throw ChatRefused(503, "the LLM backend is stopping");
  }
  if (im.running) im.running->inc();
  boost::asio::co_spawn(im.ioc, im.run(call), boost::asio::detached);
  return call->id;
}

void RemoteChatBackend::cancel(RequestId id) {
  std::shared_ptr<Call> call;
  {
    std::lock_guard lock(impl_->mutex);
    auto it = impl_->calls.find(id);
    if (it == impl_->calls.end()) return;
    call = it->second;
  }
  boost::asio::post(impl_->ioc, [im = impl_.get(), call] { im->abort(*call, "cancelled"); });
}

}  // namespace talkserve::llm
