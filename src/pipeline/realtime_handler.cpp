// The WebSocket side of GET /v1/realtime: one RealtimeSession per connection, driven on its
// own strand of the control pool; every server event is one text frame.

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <cstdio>
#include <random>

#include "live_messages.hpp"
#include "realtime_backend.hpp"
#include "talkserve/net/websocket_session.hpp"
#include "talkserve/sched/clock.hpp"

namespace talkserve::pipeline {
namespace {

namespace asio = boost::asio;
using Strand = asio::strand<asio::thread_pool::executor_type>;

std::string new_session_id() {
  std::random_device rd;
  char hex[33];
  std::snprintf(hex, sizeof hex, "%08x%08x%08x%08x", rd(), rd(), rd(), rd());
  return std::string("sess_") + hex;
}

class RealtimeHandler final : public net::WebSocketHandler,
                              public std::enable_shared_from_this<RealtimeHandler> {
 public:
  RealtimeHandler(Stages& s, asio::thread_pool& control, asio::thread_pool& render,
                  const net::RequestContext& ctx)
      : s_(s),
        strand_(asio::make_strand(control)),
        backend_(make_stages_realtime_backend(s, control, render, ctx.priority)),
        trace_id_(ctx.trace_id) {}

  void on_open(const std::shared_ptr<net::WebSocketSession>& ws) override {
    asio::post(strand_, [self = shared_from_this(), ws] { self->start(ws); });
  }

  void on_message(const std::shared_ptr<net::WebSocketSession>& ws, std::string data,
                  bool binary) override {
    asio::post(strand_, [self = shared_from_this(), ws, data = std::move(data), binary] {
      if (!self->session_) self->start(ws);
      if (self->closing_) return;
      try {
        if (binary) {
          self->session_->on_binary();
        } else {
          self->session_->on_text(data);
        }
      } catch (const std::exception& e) {
        // The session answers bad input itself; this is a bug: the connection closes, others go on.
        spdlog::error("[{}] realtime session: {}", self->trace_id_, e.what());
        self->close(1011, "internal error");
      }
    });
  }

  void on_drain(const std::shared_ptr<net::WebSocketSession>&) override {
    asio::post(strand_, [self = shared_from_this()] {
      self->draining_ = true;
      if (!self->session_ || !self->session_->responding())
        self->close(kCloseGoingAway, "server shutting down");
    });
  }

  void on_close(const std::shared_ptr<net::WebSocketSession>&) override {
    asio::post(strand_, [self = shared_from_this()] {
      self->closing_ = true;
      if (self->session_) self->session_->close();
      self->ws_.reset();
    });
  }

 private:
  void start(const std::shared_ptr<net::WebSocketSession>& ws) {
    if (session_) return;
    ws_ = ws;
    realtime::RealtimeSessionOptions o;
    o.session_id = new_session_id();
    o.model = backend_->model_name();
    o.max_buffer_seconds = s_.cfg.max_audio_seconds;
    std::weak_ptr<RealtimeHandler> weak = weak_from_this();
    o.on_idle = [weak] {
      // Runs on the strand, inside the session: the close is posted.
      if (auto self = weak.lock(); self && self->draining_) {
        asio::post(self->strand_, [self] { self->close(kCloseGoingAway, "server shutting down"); });
      }
    };
    auto post = [strand = strand_](std::function<void()> f) { asio::post(strand, std::move(f)); };
    std::weak_ptr<net::WebSocketSession> weak_ws = ws;
    auto send = [weak, weak_ws](nlohmann::json ev) {
      auto w = weak_ws.lock();
      if (!w) return;
      if (w->send_text(event_text(ev)) == net::PushResult::full) {
        // A live conversation cannot wait for a client that does not read.
        if (auto self = weak.lock()) {
          asio::post(self->strand_, [self] { self->close(kClosePolicy, "client too slow"); });
        }
      }
    };
    session_ = std::make_shared<realtime::RealtimeSession>(*backend_, clock_, std::move(o),
                                                           std::move(post), std::move(send));
    session_->open();
  }

  void close(std::uint16_t code, const std::string& reason) {
    if (closing_) return;
    closing_ = true;
    if (session_) session_->close();
    if (ws_) ws_->close(code, reason);
  }

  Stages& s_;
  Strand strand_;
  std::unique_ptr<realtime::RealtimeBackend> backend_;
  const std::string trace_id_;
  sched::SteadyClock clock_;

  // Strand state.
  std::shared_ptr<net::WebSocketSession> ws_;
  std::shared_ptr<realtime::RealtimeSession> session_;
  bool closing_ = false;
  bool draining_ = false;
};

}  // namespace

std::shared_ptr<net::WebSocketHandler> make_realtime_session(Stages& stages,
                                                             asio::thread_pool& control,
                                                             asio::thread_pool& render,
                                                             const net::RequestContext& context) {
  return std::make_shared<RealtimeHandler>(stages, control, render, context);
}

}  // namespace talkserve::pipeline
