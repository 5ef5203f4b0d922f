// WebSocket sessions: upgrade, echo of text and binary, the message size cap (1009), server
// close codes, ping keep-alive, the bounded send queue, and shutdown (1001).

#include <boost/asio/steady_timer.hpp>
#include <catch2/catch.hpp>

#include "talkserve/net/websocket_session.hpp"
#include "test_support.hpp"

using namespace talkserve::net;
using namespace talkserve::net::test;
using boost::beast::http::verb;

namespace {

// What the sessions of one test did, for the test thread to check.
struct SessionLog {
  std::mutex mutex;
  std::vector<std::string> trace_ids;
  std::vector<PushResult> open_pushes;  // results of the pushes made in on_open
  std::string route_name;               // as the session's context has it
  Event opened;
  Event closed;
  Event drain_asked;
  int factory_calls = 0;
};

// Echoes every message with its kind. "close-me" answers "last words" then closes with 4000;
// "later" answers "done" after 700 ms. With `open_burst` > 0, on_open sends that many messages.
class EchoHandler final : public WebSocketHandler {
 public:
  EchoHandler(SessionLog& log, int open_burst) : log_(log), open_burst_(open_burst) {}

  void on_open(const std::shared_ptr<WebSocketSession>& s) override {
    std::lock_guard lock(log_.mutex);
    log_.route_name = s->context().route_name;
    for (int i = 0; i < open_burst_; ++i) {
      log_.open_pushes.push_back(s->send_text("burst " + std::to_string(i)));
    }
    log_.opened.set();
  }

  void on_message(const std::shared_ptr<WebSocketSession>& s, std::string data,
                  bool binary) override {
    if (data == "close-me") {
      s->send_text("last words");
      s->close(4000, "bye now");
    } else if (data == "later") {
      auto timer = std::make_shared<asio::steady_timer>(s->executor(), 700ms);
      timer->async_wait([timer, s](boost::system::error_code ec) {
        if (!ec) s->send_text("done");
      });
    } else if (binary) {
      s->send_binary(data);
    } else {
      s->send_text(data);
    }
  }

  void on_drain(const std::shared_ptr<WebSocketSession>& s) override {
    log_.drain_asked.set();
    s->send_text("draining");
  }

  void on_close(const std::shared_ptr<WebSocketSession>&) override { log_.closed.set(); }

 private:
  SessionLog& log_;
  int open_burst_;
};

Router ws_router(SessionLog& log, int open_burst = 0) {
  Router r;
  r.add_websocket(
      "/v1/stream",
      [&log, open_burst](const RequestContext& ctx) {
        std::lock_guard lock(log.mutex);
        ++log.factory_calls;
        log.trace_ids.push_back(ctx.trace_id);
        return std::make_shared<EchoHandler>(log, open_burst);
      },
      route_options("stream"));
  return r;
}

// The next read ends the session with a close frame carrying `code`. When the server stopped
// reading mid-message (`abandoned_input`), it closes its socket right after its close frame, so
// the client's close reply may fail: the frame's code is what counts.
// A session the server shuts down may be told to drain first; its "draining" is skipped.
void check_closed_with(WsTestClient& ws, uint16_t code, bool abandoned_input = false) {
  beast::error_code ec;
  auto msg = ws.read(3s, &ec);
  while (msg && msg->data == "draining") msg = ws.read(3s, &ec);
  INFO("unexpected message: " << (msg ? msg->data : std::string("-")));
  INFO("read ended with: " << ec.message());
  CHECK_FALSE(msg);
  if (abandoned_input) {
    CHECK(ec);
    CHECK(ec != beast::error::timeout);
  } else {
    CHECK(ec == websocket::error::closed);
  }
  CHECK(ws.close_reason().code == code);
}

}  // namespace

TEST_CASE("websocket: upgrade, then echo text and binary in order", "[net][websocket]") {
  SessionLog log;
  TestServer ts(ws_router(log));
  WsTestClient ws(ts.port());
  REQUIRE_FALSE(ws.handshake("/v1/stream"));
  const auto& up = ws.upgrade_response();
  CHECK(up.result() == http::status::switching_protocols);
  CHECK(up[http::field::server].starts_with("talkserve/"));
  REQUIRE(log.opened.wait_for(2s));
  {
    std::lock_guard lock(log.mutex);
    REQUIRE(log.trace_ids.size() == 1);
    CHECK(up["X-Request-Id"] == log.trace_ids[0]);
    CHECK(log.route_name == "stream");
  }

  REQUIRE_FALSE(ws.send_text("hello"));
  REQUIRE_FALSE(ws.send_binary(std::string("\x00\x01\xff", 3)));
  REQUIRE_FALSE(ws.send_text("again"));
  auto a = ws.read();
  auto b = ws.read();
  auto c = ws.read();
  REQUIRE(a);
  REQUIRE(b);
  REQUIRE(c);
  CHECK(a->data == "hello");
  CHECK_FALSE(a->binary);
  CHECK(b->data == std::string("\x00\x01\xff", 3));
  CHECK(b->binary);
  CHECK(c->data == "again");

  REQUIRE_FALSE(ws.close(websocket::close_code::normal));
  CHECK(log.closed.wait_for(2s));
  CHECK(ts.server().wait_closed(2s));
}

TEST_CASE("websocket: a plain GET on a WebSocket route is 426", "[net][websocket]") {
  SessionLog log;
  TestServer ts(ws_router(log));
  HttpTestClient c(ts.port());
  auto res = c.roundtrip(verb::get, "/v1/stream");
  CHECK(res.result() == http::status::upgrade_required);
  CHECK(res[http::field::upgrade] == "websocket");
  CHECK(error_type_and_code(res.body()).second == "upgrade_required");
  CHECK(log.factory_calls == 0);
}

TEST_CASE("websocket: a message over ws_max_message_bytes closes with 1009", "[net][websocket]") {
  auto cfg = fast_config();
  cfg.ws_max_message_bytes = 1024;
  SessionLog log;
  TestServer ts(ws_router(log), cfg);
  WsTestClient ws(ts.port());
  REQUIRE_FALSE(ws.handshake("/v1/stream"));
  REQUIRE_FALSE(ws.send_text(std::string(1024, 'a')));  // at the cap: fine
  auto echo = ws.read();
  REQUIRE(echo);
  CHECK(echo->data.size() == 1024);
  ws.send_text(std::string(2048, 'b'));
  check_closed_with(ws, 1009, /*abandoned_input=*/true);
  CHECK(log.closed.wait_for(2s));
}

TEST_CASE("websocket: server close sends queued messages, then the close code",
          "[net][websocket]") {
  SessionLog log;
  TestServer ts(ws_router(log));
  WsTestClient ws(ts.port());
  REQUIRE_FALSE(ws.handshake("/v1/stream"));
  REQUIRE_FALSE(ws.send_text("close-me"));
  auto last = ws.read();
  REQUIRE(last);
  CHECK(last->data == "last words");
  check_closed_with(ws, 4000);
  CHECK(ws.close_reason().reason == "bye now");
  CHECK(log.closed.wait_for(2s));
  CHECK(ts.server().wait_closed(2s));
}

TEST_CASE("websocket: pings keep a quiet but responsive client connected",
          "[net][websocket][timeouts]") {
  auto cfg = fast_config();
  cfg.ws_ping_interval = 200ms;  // idle timeout 400 ms
  SessionLog log;
  TestServer ts(ws_router(log), cfg);
  WsTestClient ws(ts.port());
  REQUIRE_FALSE(ws.handshake("/v1/stream"));
  REQUIRE_FALSE(ws.send_text("later"));
  // Nothing but pings for 700 ms, answered by the client while it waits in read().
  auto done = ws.read(3s);
  REQUIRE(done);
  CHECK(done->data == "done");
  CHECK_FALSE(log.closed.is_set());
  REQUIRE_FALSE(ws.send_text("still here"));
  auto echo = ws.read();
  REQUIRE(echo);
  CHECK(echo->data == "still here");
}

TEST_CASE("websocket: a client that never answers pings is dropped", "[net][websocket][timeouts]") {
  auto cfg = fast_config();
  cfg.ws_ping_interval = 100ms;
  SessionLog log;
  TestServer ts(ws_router(log), cfg);
  WsTestClient ws(ts.port());
  REQUIRE_FALSE(ws.handshake("/v1/stream"));
  REQUIRE(log.opened.wait_for(2s));
  auto start = std::chrono::steady_clock::now();
  // The client reads nothing, so it never answers a ping.
  CHECK(log.closed.wait_for(3s));
  CHECK(std::chrono::steady_clock::now() - start >= 100ms);
  CHECK(ts.server().wait_closed(2s));
}

TEST_CASE("websocket: the send queue is bounded and reading pauses until it drains",
          "[net][websocket][backpressure]") {
  auto cfg = fast_config();
  cfg.stream_queue_limit = 4;
  SessionLog log;
  TestServer ts(ws_router(log, /*open_burst=*/10), cfg);
  WsTestClient ws(ts.port());
  REQUIRE_FALSE(ws.handshake("/v1/stream"));
  REQUIRE(log.opened.wait_for(2s));
  {
    std::lock_guard lock(log.mutex);
    REQUIRE(log.open_pushes.size() == 10);
    for (int i = 0; i < 10; ++i) {
      INFO("push " << i);
      CHECK(log.open_pushes[i] == (i < 4 ? PushResult::ok : PushResult::full));
    }
  }
  for (int i = 0; i < 4; ++i) {
    auto m = ws.read();
    REQUIRE(m);
    CHECK(m->data == "burst " + std::to_string(i));
  }
  // Drained: the session reads again and answers.
  REQUIRE_FALSE(ws.send_text("after the burst"));
  auto echo = ws.read();
  REQUIRE(echo);
  CHECK(echo->data == "after the burst");
}

TEST_CASE("websocket: admission refusal happens before the upgrade", "[net][websocket]") {
  SessionLog log;
  AdmissionHook refuse = [](const Request&, const Route&) {
    AdmissionDecision d;
    d.status = 401;
    d.message = "missing API key";
    d.code = "invalid_api_key";
    return d;
  };
  TestServer ts(ws_router(log), fast_config(), refuse);
  WsTestClient ws(ts.port());
  CHECK(ws.handshake("/v1/stream"));
  CHECK(ws.upgrade_response().result() == http::status::unauthorized);
  CHECK(log.factory_calls == 0);
}

TEST_CASE("websocket: stop() closes sessions with 1001", "[net][websocket][drain]") {
  SessionLog log;
  TestServer ts(ws_router(log));
  WsTestClient ws(ts.port());
  REQUIRE_FALSE(ws.handshake("/v1/stream"));
  REQUIRE(log.opened.wait_for(2s));
  ts.server().stop();
  check_closed_with(ws, 1001);
  CHECK(log.closed.wait_for(2s));
  CHECK(ts.server().wait_closed(2s));
}

TEST_CASE("websocket: begin_drain asks the handler to finish, stop() ends the session",
          "[net][websocket][drain]") {
  SessionLog log;
  TestServer ts(ws_router(log));
  WsTestClient ws(ts.port());
  REQUIRE_FALSE(ws.handshake("/v1/stream"));
  REQUIRE(log.opened.wait_for(2s));
  ts.server().begin_drain();
  CHECK(log.drain_asked.wait_for(2s));
  // The session lives on through the grace period so the current turn can finish.
  auto m = ws.read();
  REQUIRE(m);
  CHECK(m->data == "draining");
  REQUIRE_FALSE(ws.send_text("one more"));
  auto echo = ws.read();
  REQUIRE(echo);
  CHECK(echo->data == "one more");
  ts.server().stop();
  check_closed_with(ws, 1001);
}

TEST_CASE("websocket: upgrades are counted as 101", "[net][websocket][metrics]") {
  SessionLog log;
  TestServer ts(ws_router(log));
  {
    WsTestClient ws(ts.port());
    REQUIRE_FALSE(ws.handshake("/v1/stream"));
    REQUIRE_FALSE(ws.close(websocket::close_code::normal));
  }
  REQUIRE(ts.server().wait_closed(2s));
  CHECK(ts.metrics().render_prometheus().find(
            R"(talkserve_http_requests_total{code="101",route="stream"} 1)") != std::string::npos);
}
