// A WebSocket session: handshake, a read loop that pauses while the outgoing queue is full,
// a writer that drains the bounded queue, Beast's ping keep-alive, and close codes. A template
// over the stream under the WebSocket: plain TCP (ws://) or TLS (wss://).

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <spdlog/spdlog.h>

#include "talkserve/net/websocket_session.hpp"
#include "websocket_impl.hpp"

namespace talkserve::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;

namespace {

// Outgoing messages carry their kind in the first byte: 'T' text, 'B' binary.
constexpr char kText = 'T';
constexpr char kBinary = 'B';

template <class Stream>
class Session final : public WebSocketSession,
                      public LiveConnection,
                      public std::enable_shared_from_this<Session<Stream>> {
 public:
  using std::enable_shared_from_this<Session<Stream>>::shared_from_this;
  using std::enable_shared_from_this<Session<Stream>>::weak_from_this;

  Session(std::shared_ptr<ServerState> state, Stream stream, RequestContext ctx,
          std::shared_ptr<WebSocketHandler> handler)
      : state_(std::move(state)),
        ws_(std::move(stream)),
        ctx_(std::move(ctx)),
        handler_(std::move(handler)),
        read_gate_(ws_.get_executor()) {}

  PushResult send_text(std::string message) override { return send(kText, std::move(message)); }
  PushResult send_binary(std::string message) override {
    return send(kBinary, std::move(message));
  }
  void close(uint16_t code, std::string reason) override {
    asio::post(ws_.get_executor(), [self = shared_from_this(), code, reason]() mutable {
      if (self->close_requested_) return;
      self->close_requested_ = true;
      self->close_reason_ = websocket::close_reason(static_cast<websocket::close_code>(code), reason);
      if (self->writer_) self->writer_->close();
    });
  }
  std::size_t pending() const override { return writer_ ? writer_->pending() : 0; }
  const RequestContext& context() const override { return ctx_; }
  asio::any_io_executor executor() override { return ws_.get_executor(); }

  void on_drain() override {
    asio::post(ws_.get_executor(), [self = shared_from_this()] { self->tell_draining(); });
  }
  void force_close() override { close(1001, "server shutting down"); }

  asio::awaitable<void> run(Request upgrade, beast::flat_buffer buffer);

 private:
  PushResult send(char kind, std::string message) {
    if (!writer_) return PushResult::closed;
    std::string framed;
    framed.reserve(message.size() + 1);
    framed.push_back(kind);
    framed.append(message);
    return writer_->push(std::move(framed));
  }
  asio::awaitable<void> write_loop();
  // On the strand: asks the handler to wind down, once, if the session is open.
  void tell_draining() {
    if (drain_told_ || !writer_ || closed_) return;
    drain_told_ = true;
    handler_->on_drain(shared_from_this());
  }

  std::shared_ptr<ServerState> state_;
  websocket::stream<Stream> ws_;
  RequestContext ctx_;
  std::shared_ptr<WebSocketHandler> handler_;
  std::shared_ptr<StreamWriter> writer_;
  asio::steady_timer read_gate_;
  bool close_requested_ = false;
  bool closed_ = false;
  bool drain_told_ = false;
  websocket::close_reason close_reason_{websocket::close_code::normal};
};

// Bytes asked of one read while a message arrives: the limit check sees at most this much
// beyond http.ws_max_message_bytes.
constexpr std::size_t kReadChunk = 64 * 1024;

template <class Stream>
asio::awaitable<void> Session<Stream>::write_loop() {
  auto self = shared_from_this();
  auto ec = co_await writer_->run();
  if (!ec && !closed_) {
    beast::error_code cec;
    beast::get_lowest_layer(ws_).expires_after(state_->config.write_timeout);
    co_await ws_.async_close(close_reason_, asio::redirect_error(asio::use_awaitable, cec));
  } else if (ec && !closed_) {
    beast::error_code cec;
    beast::get_lowest_layer(ws_).socket().close(cec);
  }
  read_gate_.cancel();
}

template <class Stream>
asio::awaitable<void> Session<Stream>::run(Request upgrade, beast::flat_buffer buffer) {
  auto self = shared_from_this();
  const auto& cfg = state_->config;
  const uint64_t id = state_->add(weak_from_this());
  beast::get_lowest_layer(ws_).expires_never();
  websocket::stream_base::timeout opt{};
  opt.handshake_timeout = cfg.header_timeout;
  opt.idle_timeout = cfg.ws_ping_interval * 2;
  opt.keep_alive_pings = true;
  ws_.set_option(opt);
  // The message limit is enforced in the read loop below, not by Beast: on an oversized
  // message Beast 1.74 sends its 1009 close and then tears the connection down after reading at
  // most one more chunk, so a client still sending gets a reset, often before it has read the
  // close frame. 0 = no limit in Beast.
  ws_.read_message_max(0);
  ws_.set_option(websocket::stream_base::decorator([trace = ctx_.trace_id](websocket::response_type& res) {
    res.set(beast::http::field::server, "talkserve/" TALKSERVE_VERSION);
    res.set("X-Request-Id", trace);
  }));
  beast::error_code ec;
  // A client sends no frame before the 101 answer, so `buffer` holds nothing we need.
  (void)buffer;
  co_await ws_.async_accept(upgrade, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    state_->remove(id);
    co_return;
  }
  auto& ws = ws_;
  // Stalled writes are bounded by the idle timeout with keep-alive pings set above.
  writer_ = std::make_shared<StreamWriter>(
      ws_.get_executor(), cfg.stream_queue_limit,
      [&ws](std::string& msg) -> asio::awaitable<beast::error_code> {
        beast::error_code wec;
        ws.text(msg.front() == kText);
        co_await ws.async_write(asio::buffer(msg.data() + 1, msg.size() - 1),
                                asio::redirect_error(asio::use_awaitable, wec));
        co_return wec;
      });
  writer_->set_on_drain([this] { read_gate_.cancel(); });
  asio::co_spawn(ws_.get_executor(), write_loop(), asio::detached);
  handler_->on_open(self);
  // Draining began during the handshake: this session missed on_drain's post.
  if (state_->draining.load()) tell_draining();

  for (;;) {
    // Back-pressure: while the client is not taking what we send, stop reading from it.
    while (writer_->pending() >= cfg.stream_queue_limit && !writer_->closed()) {
      read_gate_.expires_at(asio::steady_timer::time_point::max());
      beast::error_code gec;
      co_await read_gate_.async_wait(asio::redirect_error(asio::use_awaitable, gec));
    }
    beast::flat_buffer in;
    bool too_big = false;
    do {
      co_await ws_.async_read_some(in, kReadChunk, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
      too_big = in.size() > cfg.ws_max_message_bytes;
    } while (!too_big && !ws_.is_message_done());
    if (ec) break;
    if (too_big) {
      // The close handshake reads and drops the rest of the message until the client's close
      // frame, so the client reads our 1009 before the connection ends.
      close_reason_ = websocket::close_reason(websocket::close_code::too_big,
                                              "message over http.ws_max_message_bytes");
      closed_ = true;
      beast::error_code cec;
      beast::get_lowest_layer(ws_).expires_after(cfg.write_timeout);
      co_await ws_.async_close(close_reason_, asio::redirect_error(asio::use_awaitable, cec));
      ec = websocket::error::message_too_big;
      break;
    }
    bool binary = ws_.got_binary();
    handler_->on_message(self, beast::buffers_to_string(in.data()), binary);
  }
  closed_ = true;
  if (ec == websocket::error::closed) {
    writer_->close();
  } else {
    writer_->abort();
  }
  handler_->on_close(self);
  state_->remove(id);
}

template <class Stream>
void start_session(std::shared_ptr<ServerState> state, Stream stream, Request upgrade,
                   RequestContext ctx, std::shared_ptr<WebSocketHandler> handler,
                   beast::flat_buffer buffer) {
  if (!handler) return;
  auto ex = stream.get_executor();
  auto session = std::make_shared<Session<Stream>>(std::move(state), std::move(stream),
                                                   std::move(ctx), std::move(handler));
  asio::co_spawn(ex,
                 [session, upgrade = std::move(upgrade), buffer = std::move(buffer)]() mutable
                 -> asio::awaitable<void> {
                   co_await session->run(std::move(upgrade), std::move(buffer));
                 },
                 [](std::exception_ptr e) {
                   if (!e) return;
                   try {
                     std::rethrow_exception(e);
                   } catch (const std::exception& ex) {
                     spdlog::error("websocket session failed: {}", ex.what());
                   }
                 });
}

}  // namespace

void run_websocket(std::shared_ptr<ServerState> state, beast::tcp_stream stream, Request upgrade,
                   RequestContext ctx, std::shared_ptr<WebSocketHandler> handler,
                   beast::flat_buffer buffer) {
  start_session(std::move(state), std::move(stream), std::move(upgrade), std::move(ctx),
                std::move(handler), std::move(buffer));
}

void run_websocket(std::shared_ptr<ServerState> state, TlsStream stream, Request upgrade,
                   RequestContext ctx, std::shared_ptr<WebSocketHandler> handler,
                   beast::flat_buffer buffer) {
  start_session(std::move(state), std::move(stream), std::move(upgrade), std::move(ctx),
                std::move(handler), std::move(buffer));
}

}  // namespace talkserve::net
