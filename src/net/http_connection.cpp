// One HTTP/1.1 connection: read a request head under the header timeout, pick the route and
// its body limit, read the body under the body timeout, ask the gateway, run the handler,
// repeat while keep-alive holds. Every failure is answered in the JSON error shape.
//
// The connection is a template over its stream: beast::tcp_stream for plain HTTP, and
// beast::ssl_stream<tcp_stream> when [http] tls_cert is set. Both are compiled from the same
// code, so the plain path pays nothing for TLS (no virtual stream, no extra buffer copy).

#include <boost/asio/co_spawn.hpp>
#include <spdlog/spdlog.h>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <array>
#include <cerrno>
#include <chrono>
#include <sys/socket.h>
#include <functional>
#include <limits>
#include <optional>
#include <vector>

#include "server_state.hpp"
#include "talkserve/net/api_error.hpp"
#include "static_files.hpp"
#include "talkserve/obs/log.hpp"
#include "talkserve/obs/trace.hpp"
#include "websocket_impl.hpp"

namespace talkserve::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kServerName = "talkserve/" TALKSERVE_VERSION;

std::optional<std::string_view> header_value(const Request& req, http::field f) {
  auto it = req.find(f);
  if (it == req.end()) return std::nullopt;
  return std::string_view(it->value());
}
std::optional<std::string_view> header_value(const Request& req, std::string_view name) {
  auto it = req.find(beast::string_view(name.data(), name.size()));
  if (it == req.end()) return std::nullopt;
  return std::string_view(it->value());
}

template <class Stream>
class Connection;

// The TCP layer under either stream type (timeouts, raw socket).
inline beast::tcp_stream& tcp_of(beast::tcp_stream& s) { return s; }
inline beast::tcp_stream& tcp_of(TlsStream& s) { return beast::get_lowest_layer(s); }

template <class Stream>
class Exchange final : public HttpExchange {
 public:
  Exchange(Connection<Stream>& conn, Request req) : conn_(conn), req_(std::move(req)) {}
  const Request& request() const override { return req_; }
  RequestContext& context() override { return ctx_; }
  asio::any_io_executor executor() override;
  asio::awaitable<void> respond(Response res) override;
  asio::awaitable<std::shared_ptr<StreamWriter>> start_stream(std::string content_type,
                                                              http::status status) override;
  bool responded() const override { return responded_; }
  void watch_disconnect(std::function<void()> on_gone) override;

  // Headers every response carries (trace id, server, CORS).
  template <typename Msg>
  void decorate(Msg& res) const;

  Connection<Stream>& conn_;
  Request req_;
  RequestContext ctx_;
  bool responded_ = false;
  bool write_failed_ = false;
  unsigned status_ = 0;
  std::shared_ptr<StreamWriter> stream_;
};

template <class Stream>
class Connection final : public LiveConnection,
                         public std::enable_shared_from_this<Connection<Stream>> {
 public:
  Connection(std::shared_ptr<ServerState> state, Stream stream)
      : state_(std::move(state)), stream_(std::move(stream)) {}

  using std::enable_shared_from_this<Connection<Stream>>::shared_from_this;
  using std::enable_shared_from_this<Connection<Stream>>::weak_from_this;

  asio::awaitable<void> run();
  void on_drain() override {
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
      self->draining_ = true;
      if (self->idle_) self->close_socket();
    });
  }
  void force_close() override {
    asio::post(stream_.get_executor(), [self = shared_from_this()] { self->close_socket(); });
  }

  void close_socket() {
    beast::error_code ec;
    tcp_of(stream_).socket().shutdown(tcp::socket::shutdown_both, ec);
    tcp_of(stream_).socket().close(ec);
  }

  // Best-effort error answer on a connection that will be closed afterwards. `method` is the
  // request's once its head is parsed: an answer to HEAD has no body (RFC 9112 6.3).
  asio::awaitable<void> send_error_and_close(http::status status, std::string_view message,
                                             std::string_view type, std::string_view code,
                                             const std::string& route,
                                             http::verb method = http::verb::unknown);
  asio::awaitable<void> handle(Request req, RouteMatch match, std::string trace_id,
                               std::chrono::steady_clock::time_point received);
  asio::awaitable<void> watch_peer();
  // Ends watch_peer() (if it runs) and waits until it has: the next request's read may start.
  asio::awaitable<void> stop_watching();
  asio::awaitable<void> discard_input(std::chrono::milliseconds budget);
  // Ends the connection: TLS close_notify (bounded), half-close, lingering read, close.
  asio::awaitable<void> finish_close();

  std::shared_ptr<ServerState> state_;
  Stream stream_;
  beast::flat_buffer buffer_;
  bool idle_ = true;
  bool draining_ = false;
  bool close_ = false;
  bool upgraded_ = false;
  bool watching_ = false;       // watch_peer() runs
  bool stop_watch_ = false;     // stop_watching() asked it to end
  bool peer_data_ = false;      // the watcher dropped bytes of the client's: close after
  std::optional<asio::steady_timer> watch_done_;  // stop_watching() waits on it
  bool linger_ = false;  // refused mid-request: the client may still be sending its body
  // watch_disconnect callbacks of the request under way; cleared once its response is complete.
  std::vector<std::function<void()>> on_gone_;
};

template <class Stream>
asio::any_io_executor Exchange<Stream>::executor() {
  return conn_.stream_.get_executor();
}

template <class Stream>
template <typename Msg>
void Exchange<Stream>::decorate(Msg& res) const {
  res.set(http::field::server, kServerName);
  if (!ctx_.trace_id.empty()) res.set("X-Request-Id", ctx_.trace_id);
  const auto& origins = conn_.state_->config.cors_allowed_origins;
  if (!origins.empty()) {
    auto origin = header_value(req_, http::field::origin);
    if (origin) {
      bool any = std::find(origins.begin(), origins.end(), "*") != origins.end();
      bool listed = std::find(origins.begin(), origins.end(), *origin) != origins.end();
      if (any || listed) {
        res.set(http::field::access_control_allow_origin, any ? "*" : std::string(*origin));
        res.set(http::field::access_control_expose_headers, "X-Request-Id, Retry-After");
        if (!any) res.set(http::field::vary, "Origin");
      }
    }
  }
}

template <class Stream>
asio::awaitable<void> Exchange<Stream>::respond(Response res) {
  if (responded_) throw std::logic_error("response already sent for this request");
  responded_ = true;
  status_ = res.result_int();
  decorate(res);
  bool keep = req_.keep_alive() && !conn_.draining_ && !conn_.state_->draining.load();
  res.keep_alive(keep);
  if (!keep) conn_.close_ = true;
  // A HEAD answer carries the length its GET body would have (static files set it already).
  if (!res.has_content_length() && !res.chunked() && res.result() != http::status::not_modified &&
      (req_.method() != http::verb::head || !res.body().empty())) {
    res.prepare_payload();
  }
  tcp_of(conn_.stream_).expires_after(conn_.state_->config.write_timeout);
  beast::error_code ec;
  if (req_.method() == http::verb::head) {
    http::response_serializer<http::string_body> sr(res);
    co_await http::async_write_header(conn_.stream_, sr,
                                      asio::redirect_error(asio::use_awaitable, ec));
  } else {
    co_await http::async_write(conn_.stream_, res, asio::redirect_error(asio::use_awaitable, ec));
  }
  tcp_of(conn_.stream_).expires_never();
  if (ec) {
    write_failed_ = true;
    conn_.close_ = true;
  }
}

template <class Stream>
asio::awaitable<std::shared_ptr<StreamWriter>> Exchange<Stream>::start_stream(
    std::string content_type, http::status status) {
  if (responded_) throw std::logic_error("response already sent for this request");
  responded_ = true;
  status_ = static_cast<unsigned>(status);
  http::response<http::empty_body> res{status, req_.version()};
  decorate(res);
  res.set(http::field::content_type, content_type);
  res.set(http::field::cache_control, "no-cache");
  res.set("X-Accel-Buffering", "no");
  res.chunked(true);
  // Kept alive like any response: the disconnect watcher below stops when the stream ends
  // (Connection::stop_watching) and keeps what the client sent meanwhile.
  const bool keep = req_.keep_alive() && !conn_.draining_ && !conn_.state_->draining.load();
  res.keep_alive(keep);
  if (!keep) conn_.close_ = true;
  http::response_serializer<http::empty_body> sr(res);
  tcp_of(conn_.stream_).expires_after(conn_.state_->config.write_timeout);
  beast::error_code ec;
  co_await http::async_write_header(conn_.stream_, sr, asio::redirect_error(asio::use_awaitable, ec));
  tcp_of(conn_.stream_).expires_never();

  auto& conn = conn_;
  auto timeout = conn_.state_->config.write_timeout;
  stream_ = std::make_shared<StreamWriter>(
      conn_.stream_.get_executor(), conn_.state_->config.stream_queue_limit,
      [&conn, timeout](std::string& msg) -> asio::awaitable<beast::error_code> {
        beast::error_code wec;
        tcp_of(conn.stream_).expires_after(timeout);
        co_await asio::async_write(conn.stream_, http::make_chunk(asio::buffer(msg)),
                                   asio::redirect_error(asio::use_awaitable, wec));
        tcp_of(conn.stream_).expires_never();
        co_return wec;
      });
  if (ec) {
    write_failed_ = true;
    stream_->abort();
  } else {
    std::weak_ptr<StreamWriter> weak = stream_;
    watch_disconnect([weak] {
      if (auto s = weak.lock()) s->abort();
    });
  }
  co_return stream_;
}

template <class Stream>
void Exchange<Stream>::watch_disconnect(std::function<void()> on_gone) {
  conn_.on_gone_.push_back(std::move(on_gone));
  if (conn_.watching_) return;
  conn_.watching_ = true;
  asio::co_spawn(conn_.stream_.get_executor(), conn_.watch_peer(), asio::detached);
}

// Waits until the peer closes its side, or until stop_watching() when the response is
// complete. Bytes the client sends meanwhile (a pipelined next request) are read so that its
// leaving stays visible: on a plain connection they are kept in buffer_ for the next request
// (up to kMaxHeldInput; beyond that they are dropped and the connection closes after the
// response). On TLS they are records that bypassed the TLS layer and cannot be decrypted: they
// are dropped and the connection closes after the response.
constexpr std::size_t kMaxHeldInput = 64 * 1024;

template <class Stream>
asio::awaitable<void> Connection<Stream>::watch_peer() {
  auto self = shared_from_this();
  auto& socket = tcp_of(stream_).socket();
  bool gone = false;
  for (;;) {
    // co_spawn starts this coroutine through a post: the response may be complete already.
    if (stop_watch_) break;
    beast::error_code ec;
    co_await socket.async_wait(tcp::socket::wait_read,
                               asio::redirect_error(asio::use_awaitable, ec));
    if (stop_watch_) break;
    if (ec || !socket.is_open()) {
      gone = true;
      break;
    }
    // Readable can be a false alarm; only a read of 0 bytes (EOF) or an error means gone.
    ssize_t n = 0;
    if (std::is_same_v<Stream, beast::tcp_stream> && !peer_data_ &&
        buffer_.size() < kMaxHeldInput) {
      auto space = buffer_.prepare(kMaxHeldInput - buffer_.size());
      n = ::recv(socket.native_handle(), space.data(), space.size(), MSG_DONTWAIT);
      if (n > 0) buffer_.commit(static_cast<std::size_t>(n));
    } else {
      char probe[4096];
      n = ::recv(socket.native_handle(), probe, sizeof(probe), MSG_DONTWAIT);
      if (n > 0) peer_data_ = true;
    }
    if (n > 0) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
    gone = true;
    break;
  }
  watching_ = false;
  if (watch_done_) watch_done_->cancel();
  if (!gone) co_return;
  // Empty when the response completed first: the client leaving then cancels nothing.
  auto callbacks = std::move(on_gone_);
  on_gone_.clear();
  for (auto& fn : callbacks) {
    if (fn) fn();
  }
}

template <class Stream>
asio::awaitable<void> Connection<Stream>::stop_watching() {
  if (!watching_) co_return;
  stop_watch_ = true;
  watch_done_.emplace(stream_.get_executor(), std::chrono::steady_clock::time_point::max());
  beast::error_code ec;
  tcp_of(stream_).socket().cancel(ec);  // only the watcher's wait is pending now
  // The watcher runs on this connection's thread: it resumes, sees stop_watch_ and cancels
  // the timer. If the socket could not be cancelled (closed), its wait has ended already.
  if (watching_) {
    co_await watch_done_->async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  watch_done_.reset();
  stop_watch_ = false;
}

template <class Stream>
asio::awaitable<void> Connection<Stream>::send_error_and_close(http::status status,
                                                       std::string_view message,
                                                       std::string_view type,
                                                       std::string_view code,
                                                       const std::string& route,
                                                       http::verb method) {
  close_ = true;
  linger_ = true;
  auto res = make_error(status, message, type, code);
  res.set(http::field::server, kServerName);
  res.keep_alive(false);
  tcp_of(stream_).expires_after(std::chrono::seconds(2));
  beast::error_code ec;
  if (method == http::verb::head) {
    http::response_serializer<http::string_body> sr(res);
    co_await http::async_write_header(stream_, sr, asio::redirect_error(asio::use_awaitable, ec));
  } else {
    co_await http::async_write(stream_, res, asio::redirect_error(asio::use_awaitable, ec));
  }
  state_->record(route, res.result_int(), 0.0);
}

// Lingering close: after refusing a request whose body is still arriving (413, 408, 400), read
// and drop what the client sends for a short while. Closing at once would make the kernel
// answer the unread bytes with a reset, and the client would lose the error response it has
// not read yet.
template <class Stream>
asio::awaitable<void> Connection<Stream>::discard_input(std::chrono::milliseconds budget) {
  const auto deadline = std::chrono::steady_clock::now() + budget;
  std::array<char, 16 * 1024> sink;
  beast::error_code ec;
  while (!ec && std::chrono::steady_clock::now() < deadline) {
    tcp_of(stream_).expires_at(deadline);
    co_await stream_.async_read_some(asio::buffer(sink),
                                     asio::redirect_error(asio::use_awaitable, ec));
  }
}

template <class Stream>
asio::awaitable<void> Connection<Stream>::finish_close() {
  beast::error_code ec;
  if constexpr (std::is_same_v<Stream, TlsStream>) {
    if (linger_) co_await discard_input(std::chrono::seconds(2));
    // close_notify tells the client the response was not truncated. async_shutdown also
    // waits for the client's close_notify, which not every client sends: bound it.
    tcp_of(stream_).expires_after(std::chrono::seconds(1));
    co_await stream_.async_shutdown(asio::redirect_error(asio::use_awaitable, ec));
    tcp_of(stream_).socket().close(ec);
    co_return;
  }
  tcp_of(stream_).socket().shutdown(tcp::socket::shutdown_send, ec);
  if (linger_ && !ec) co_await discard_input(std::chrono::seconds(2));
  tcp_of(stream_).socket().close(ec);
}

template <class Stream>
asio::awaitable<void> Connection<Stream>::run() {
  auto self = shared_from_this();
  const auto& cfg = state_->config;
  const uint64_t id = state_->add(weak_from_this());
  for (;;) {
    if (draining_ || state_->draining.load()) break;
    idle_ = true;
    beast::error_code ec;
    if (buffer_.size() == 0) {
      // Keep-alive idle: wait for the first byte of the next request.
      tcp_of(stream_).expires_after(cfg.keepalive_timeout);
      auto n = co_await stream_.async_read_some(buffer_.prepare(4096),
                                                asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
      buffer_.commit(n);
    }
    idle_ = false;
    const auto received = std::chrono::steady_clock::now();

    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(cfg.max_header_bytes));
    // Beast checks Content-Length against the body limit while parsing the head, before the
    // route (and so its limit) is known: lift it here and apply the route's limit below.
    // (Not boost::none: Beast 1.74 compares the length with the optional, and none is less.)
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    tcp_of(stream_).expires_after(cfg.header_timeout);
    co_await http::async_read_header(stream_, buffer_, parser,
                                     asio::redirect_error(asio::use_awaitable, ec));
    if (ec == http::error::header_limit) {
      co_await send_error_and_close(http::status::request_header_fields_too_large,
                                    "request headers exceed " +
                                        std::to_string(cfg.max_header_bytes) + " bytes",
                                    "invalid_request_error", "headers_too_large", "-");
      break;
    }
    if (ec == beast::error::timeout) {
      co_await send_error_and_close(http::status::request_timeout,
                                    "request head not received in time",
                                    "invalid_request_error", "request_timeout", "-");
      break;
    }
    if (ec == http::error::end_of_stream || ec == asio::error::eof ||
        ec == asio::error::connection_reset || ec == asio::error::operation_aborted ||
        ec == asio::error::bad_descriptor) {
      break;
    }
    if (ec) {
      co_await send_error_and_close(http::status::bad_request,
                                    "malformed HTTP request: " + ec.message(),
                                    "invalid_request_error", "bad_request", "-");
      break;
    }

    const auto& head = parser.get();
    std::string trace_id = obs::resolve_trace_id(header_value(head, "traceparent"),
                                                 header_value(head, "X-Request-Id"));
    auto match = state_->router.match(head.method(), std::string_view(head.target()));
    std::size_t limit = cfg.max_body_bytes;
    std::string route_name = "-";
    if (match.kind == RouteMatch::Kind::found) {
      route_name = match.route->options.name;
      if (match.route->options.body_limit) limit = *match.route->options.body_limit;
    }
    parser.body_limit(limit);
    if (parser.content_length() && *parser.content_length() > limit) {
      co_await send_error_and_close(http::status::payload_too_large,
                                    "request body of " + std::to_string(*parser.content_length()) +
                                        " bytes exceeds the limit of " + std::to_string(limit) +
                                        " bytes for this route",
                                    "invalid_request_error", "body_too_large", route_name,
                                    head.method());
      break;
    }
    if (!parser.is_done()) {
      auto expect = head[http::field::expect];
      if (beast::iequals(expect, "100-continue")) {
        static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
        tcp_of(stream_).expires_after(cfg.write_timeout);
        co_await asio::async_write(stream_, asio::buffer(kContinue.data(), kContinue.size()),
                                   asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;
      }
      tcp_of(stream_).expires_after(cfg.body_timeout);
      co_await http::async_read(stream_, buffer_, parser,
                                asio::redirect_error(asio::use_awaitable, ec));
      if (ec == http::error::body_limit) {
        co_await send_error_and_close(http::status::payload_too_large,
                                      "request body exceeds the limit of " +
                                          std::to_string(limit) + " bytes for this route",
                                      "invalid_request_error", "body_too_large", route_name,
                                      head.method());
        break;
      }
      if (ec == beast::error::timeout) {
        co_await send_error_and_close(http::status::request_timeout,
                                      "request body not received in time",
                                      "invalid_request_error", "request_timeout", route_name,
                                      head.method());
        break;
      }
      if (ec == http::error::end_of_stream || ec == asio::error::eof ||
          ec == asio::error::connection_reset || ec == asio::error::operation_aborted) {
        break;
      }
      if (ec) {
        co_await send_error_and_close(http::status::bad_request,
                                      "malformed HTTP request body: " + ec.message(),
                                      "invalid_request_error", "bad_request", route_name,
                                      head.method());
        break;
      }
    }
    tcp_of(stream_).expires_never();
    co_await handle(parser.release(), std::move(match), std::move(trace_id), received);
    if (upgraded_) break;
    co_await stop_watching();
    if (close_ || peer_data_) break;
  }
  if (!upgraded_) co_await finish_close();
  state_->remove(id);
}

template <class Stream>
asio::awaitable<void> Connection<Stream>::handle(Request req, RouteMatch match,
                                                 std::string trace_id,
                                                 std::chrono::steady_clock::time_point received) {
  Exchange<Stream> ex(*this, std::move(req));
  ex.ctx_.trace_id = std::move(trace_id);
  ex.ctx_.received = received;
  ex.ctx_.params = std::move(match.params);
  const Request& r = ex.req_;
  std::string route_name = match.route ? match.route->options.name : "-";
  ex.ctx_.route_name = route_name;
  obs::RequestLogger log(ex.ctx_.trace_id);

  auto finish = [&] {
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - received).count();
    state_->record(route_name, ex.status_, secs);
    // The path only: a query may carry an API key (WebSocket upgrades from browsers).
    const std::string_view target(r.target());
    log.debug("{} {} -> {} in {:.3f} ms", std::string_view(r.method_string()),
              target.substr(0, target.find('?')), ex.status_, secs * 1e3);
  };

  // CORS preflight.
  if (r.method() == http::verb::options && !state_->config.cors_allowed_origins.empty() &&
      r.find(http::field::access_control_request_method) != r.end()) {
    Response res{http::status::no_content, r.version()};
    res.set(http::field::access_control_allow_methods, "GET, POST, DELETE, OPTIONS");
    res.set(http::field::access_control_allow_headers,
            "Authorization, Content-Type, X-Request-Id, traceparent");
    res.set(http::field::access_control_max_age, "600");
    co_await ex.respond(std::move(res));
    route_name = "preflight";
    finish();
    co_return;
  }

  if (match.kind == RouteMatch::Kind::not_found) {
    const auto& root = state_->router.static_root();
    if (!root.empty() && (r.method() == http::verb::get || r.method() == http::verb::head)) {
      if (auto res = serve_static(root, r)) {
        route_name = "static";
        co_await ex.respond(std::move(*res));
        finish();
        co_return;
      }
    }
    co_await ex.respond(make_error(http::status::not_found,
                                   "no route for " + std::string(r.method_string()) + " " +
                                       std::string(r.target()),
                                   "invalid_request_error", "not_found", r.version()));
    finish();
    co_return;
  }
  if (match.kind == RouteMatch::Kind::method_not_allowed) {
    auto res = make_error(http::status::method_not_allowed,
                          "method " + std::string(r.method_string()) + " is not allowed on " +
                              std::string(r.target()) + "; allowed: " + match.allow,
                          "invalid_request_error", "method_not_allowed", r.version());
    res.set(http::field::allow, match.allow);
    co_await ex.respond(std::move(res));
    finish();
    co_return;
  }

  const Route& route = *match.route;
  if (state_->admission) {
    AdmissionDecision d = state_->admission(r, route);
    if (d.status != 200) {
      auto status = static_cast<http::status>(d.status);
      std::string type = d.status == 401   ? "authentication_error"
                         : d.status == 429 ? "rate_limit_error"
                                           : "server_overloaded";
      auto res = make_error(status, d.message, type, d.code, r.version());
      if (d.retry_after_s > 0) res.set(http::field::retry_after, std::to_string(d.retry_after_s));
      if (d.status == 401) res.set(http::field::www_authenticate, "Bearer");
      co_await ex.respond(std::move(res));
      finish();
      co_return;
    }
    ex.ctx_.priority = d.priority;
    ex.ctx_.principal = std::move(d.principal);
    ex.ctx_.admission = std::move(d.permit);
  }

  if (route.websocket) {
    if (!beast::websocket::is_upgrade(r)) {
      auto res = make_error(http::status::upgrade_required,
                            "this route takes a WebSocket upgrade", "invalid_request_error",
                            "upgrade_required", r.version());
      res.set(http::field::upgrade, "websocket");
      co_await ex.respond(std::move(res));
      finish();
      co_return;
    }
    // A factory that returns no handler refuses the upgrade: the service is not ready. One
    // that throws ApiError refuses it with that error (503 overloaded ...).
    std::shared_ptr<WebSocketHandler> handler;
    std::optional<ApiError> refused;
    try {
      handler = route.websocket(ex.ctx_);
    } catch (const ApiError& e) {
      refused = e;
    }
    if (refused) {
      co_await ex.respond(error_response(*refused, r.version()));
      finish();
      co_return;
    }
    if (!handler) {
      co_await ex.respond(make_error(http::status::service_unavailable,
                                     "the service behind this route is not ready (starting or stopping)",
                                     "server_error", "model_loading", r.version()));
      finish();
      co_return;
    }
    upgraded_ = true;
    ex.status_ = 101;
    finish();
    run_websocket(state_, std::move(stream_), std::move(ex.req_), std::move(ex.ctx_),
                  std::move(handler), std::move(buffer_));
    co_return;
  }

  state_->request_started();
  std::string failure;
  try {
    co_await route.handler(ex);
  } catch (const std::exception& e) {
    failure = e.what();
  } catch (...) {
    failure = "unknown exception";
  }
  if (!failure.empty()) {
    log.error("handler for {} failed: {}", route_name, failure);
    if (!ex.responded()) {
      co_await ex.respond(make_error(http::status::internal_server_error,
                                     "internal error: " + failure, "server_error",
                                     "internal_error", r.version()));
    } else if (ex.stream_) {
      ex.stream_->close();
    }
  }
  if (ex.stream_) {
    // The producer pushes from its own thread; drain until it closes or the client leaves.
    auto ec = co_await ex.stream_->run();
    bool complete = false;
    if (!ec && !ex.write_failed_) {
      beast::error_code wec;
      tcp_of(stream_).expires_after(state_->config.write_timeout);
      co_await asio::async_write(stream_, http::make_chunk_last(),
                                 asio::redirect_error(asio::use_awaitable, wec));
      tcp_of(stream_).expires_never();
      complete = !wec;
    }
    // A stream cut short (client gone, write failed, aborted) ends the connection; a complete
    // one leaves it for the next request when both sides keep it alive.
    if (!complete) close_ = true;
  } else if (!ex.responded()) {
    co_await ex.respond(make_error(http::status::internal_server_error,
                                   "the handler produced no response", "server_error",
                                   "internal_error", r.version()));
  }
  on_gone_.clear();  // the response is complete
  state_->request_finished();
  finish();
}

}  // namespace

namespace {

void log_failure(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    spdlog::error("connection coroutine failed: {}", ex.what());
  }
}

// The first byte of every TLS connection: a handshake record (RFC 8446 section 5.1).
constexpr unsigned char kTlsHandshakeRecord = 0x16;

// A TLS listener's connection: read the first bytes under the header timeout; a client that
// speaks plain HTTP gets a plain 400 telling it to use https (instead of an opaque handshake
// failure); otherwise handshake, then run the same connection code as the plain listener.
asio::awaitable<void> run_tls(std::shared_ptr<ServerState> state, tcp::socket socket) {
  beast::tcp_stream tcp(std::move(socket));
  beast::flat_buffer buffer;
  beast::error_code ec;
  tcp.expires_after(state->config.header_timeout);
  const auto n = co_await tcp.async_read_some(buffer.prepare(4096),
                                              asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return;
  buffer.commit(n);
  const auto* first = static_cast<const unsigned char*>(buffer.data().data());
  if (*first != kTlsHandshakeRecord) {
    auto res = make_error(http::status::bad_request,
                          "this port speaks TLS: use https:// (or wss://)",
                          "invalid_request_error", "tls_required");
    res.set(http::field::server, kServerName);
    res.keep_alive(false);
    res.prepare_payload();
    tcp.expires_after(std::chrono::seconds(2));
    co_await http::async_write(tcp, res, asio::redirect_error(asio::use_awaitable, ec));
    state->record("-", res.result_int(), 0.0);
    tcp.socket().shutdown(tcp::socket::shutdown_send, ec);
    tcp.socket().close(ec);
    co_return;
  }
  const auto context = state->tls_context();  // a SIGHUP reload may replace it meanwhile
  TlsStream tls(std::move(tcp), *context);
  const auto used = co_await tls.async_handshake(
      asio::ssl::stream_base::server, buffer.data(), asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    spdlog::debug("TLS handshake failed: {}", ec.message());
    beast::error_code cec;
    beast::get_lowest_layer(tls).socket().close(cec);
    co_return;
  }
  buffer.consume(used);
  auto conn = std::make_shared<Connection<TlsStream>>(std::move(state), std::move(tls));
  conn->buffer_ = std::move(buffer);
  co_await conn->run();
}

}  // namespace

void start_connection(std::shared_ptr<ServerState> state, tcp::socket socket) {
  if (state->tls_enabled) {
    auto ex = socket.get_executor();
    asio::co_spawn(ex, run_tls(std::move(state), std::move(socket)), log_failure);
    return;
  }
  auto conn = std::make_shared<Connection<beast::tcp_stream>>(std::move(state),
                                                              beast::tcp_stream(std::move(socket)));
  auto ex = conn->stream_.get_executor();
  asio::co_spawn(ex, [conn]() -> asio::awaitable<void> { co_await conn->run(); }, log_failure);
}

}  // namespace talkserve::net
