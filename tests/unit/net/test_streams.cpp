// Streaming answers (SSE via start_stream) and disconnect detection: events in push order,
// a bounded queue with on_drain when a slow client catches up, on_disconnect when the client
// leaves or stops reading, and watch_disconnect for slow handlers.

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <catch2/catch.hpp>

#include "talkserve/net/stream_writer.hpp"
#include "test_support.hpp"

using namespace talkserve::net;
using namespace talkserve::net::test;
using boost::beast::http::verb;

namespace {

// Where a streaming handler leaves its writer for the test thread.
struct WriterSlot {
  std::mutex mutex;
  std::shared_ptr<StreamWriter> writer;
  Event ready;
  Event disconnected;

  void put(std::shared_ptr<StreamWriter> w) {
    w->set_on_disconnect([this] { disconnected.set(); });
    {
      std::lock_guard lock(mutex);
      writer = std::move(w);
    }
    ready.set();
  }
  void clear() {
    std::lock_guard lock(mutex);
    writer.reset();
  }
  std::shared_ptr<StreamWriter> get() {
    REQUIRE(ready.wait_for(2s));
    std::lock_guard lock(mutex);
    return writer;
  }
};

// Counts on_drain calls and lets a thread wait for the next one.
struct DrainCounter {
  std::mutex mutex;
  std::condition_variable cv;
  int count = 0;

  void hit() {
    {
      std::lock_guard lock(mutex);
      ++count;
    }
    cv.notify_all();
  }
  int value() {
    std::lock_guard lock(mutex);
    return count;
  }
  bool wait_beyond(int seen, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, timeout, [&] { return count > seen; });
  }
};

// A stream route whose handler hands its writer to `slot` and returns.
Router slot_router(WriterSlot& slot) {
  Router r;
  r.add(
      verb::post, "/v1/events",
      [&slot](HttpExchange& ex) -> asio::awaitable<void> {
        slot.put(co_await ex.start_stream("text/event-stream"));
      },
      route_options("events"));
  return r;
}

std::string numbered(int i, std::size_t size) {
  std::string s = std::to_string(i) + ":";
  s.resize(size, 'x');
  return s;
}

// Pushes big messages until the queue stays full (the client's socket is blocked) or the
// writer closes. Returns the messages accepted.
std::vector<std::string> fill_until_blocked(StreamWriter& w, DrainCounter& drains,
                                            std::size_t limit) {
  std::vector<std::string> accepted;
  for (int i = 0; i < 4000; ++i) {
    auto msg = numbered(i, 64 * 1024);
    auto r = w.push(msg);
    if (r == PushResult::ok) {
      accepted.push_back(std::move(msg));
      continue;
    }
    if (r == PushResult::closed) break;
    CHECK(w.pending() <= limit);
    // Full: either the writer is still moving (a drain comes soon) or the socket is blocked.
    int seen = drains.value();
    if (!drains.wait_beyond(seen, 300ms)) break;
  }
  return accepted;
}

}  // namespace

TEST_CASE("SSE: events arrive in push order, close ends the response, the connection stays",
          "[net][stream]") {
  ThreadBag producers;
  Router r;
  r.add(verb::post, "/v1/chat/completions", [&](HttpExchange& ex) -> asio::awaitable<void> {
    auto w = co_await ex.start_stream("text/event-stream");
    // The producer is another thread, as an LLM engine would be.
    producers.spawn([w] {
      // A producer that simply retries while the queue is full.
      auto push = [&w](const std::string& event) {
        PushResult r;
        while ((r = w->push(event)) == PushResult::full) std::this_thread::yield();
        return r == PushResult::ok;
      };
      for (int i = 0; i < 200; ++i) {
        if (!push(sse_event("{\"i\":" + std::to_string(i) + "}"))) return;
      }
      push(sse_event("[DONE]"));
      w->close();
    });
  });
  TestServer ts(std::move(r));
  ts.on_shutdown([&] { producers.join(); });
  HttpTestClient c(ts.port());

  auto res = c.roundtrip(verb::post, "/v1/chat/completions", "{}", {{"X-Request-Id", "sse-1"}});
  CHECK(res.result() == http::status::ok);
  CHECK(res[http::field::content_type] == "text/event-stream");
  CHECK(res[http::field::cache_control] == "no-cache");
  CHECK(res.chunked());
  CHECK(res.keep_alive());  // a complete stream leaves the connection for the next request
  CHECK(res["X-Request-Id"] == "sse-1");
  std::string expected;
  for (int i = 0; i < 200; ++i) expected += "data: {\"i\":" + std::to_string(i) + "}\n\n";
  expected += "data: [DONE]\n\n";
  CHECK(res.body() == expected);

  // The next stream on the same connection (as an OpenAI client's pool sends it).
  auto again = c.roundtrip(verb::post, "/v1/chat/completions", "{}", {{"X-Request-Id", "sse-2"}});
  CHECK(again.result() == http::status::ok);
  CHECK(again["X-Request-Id"] == "sse-2");
  CHECK(again.body() == expected);
  CHECK(ts.server().connections() == 1);

  // Connection: close is honoured.
  auto last = c.roundtrip(verb::post, "/v1/chat/completions", "{}", {{"Connection", "close"}});
  CHECK(last.body() == expected);
  CHECK_FALSE(last.keep_alive());
  CHECK(c.wait_closed(2s));
}

TEST_CASE("SSE: a request sent while a stream runs is answered after it", "[net][stream]") {
  Event release;
  ThreadBag producers;
  Router r;
  r.add(verb::get, "/stream", [&](HttpExchange& ex) -> asio::awaitable<void> {
    auto w = co_await ex.start_stream("text/event-stream");
    producers.spawn([w, &release] {
      w->push(sse_event("first"));
      release.wait_for(5s);
      w->push(sse_event("second"));
      w->close();
    });
  });
  r.add(verb::get, "/quick", [](HttpExchange& ex) -> asio::awaitable<void> {
    co_await ex.respond(make_json(http::status::ok, "{\"quick\":true}"));
  });
  TestServer ts(std::move(r));
  ts.on_shutdown([&] { producers.join(); });
  HttpTestClient c(ts.port());
  http::request<http::string_body> first{verb::get, "/stream", 11};
  first.set(http::field::host, "localhost");
  REQUIRE_FALSE(c.send(first));
  // Pipelined behind the running stream: held until the stream ends, then answered.
  http::request<http::string_body> second{verb::get, "/quick", 11};
  second.set(http::field::host, "localhost");
  REQUIRE_FALSE(c.send(second));
  std::this_thread::sleep_for(100ms);
  release.set();
  auto a = c.read_response(5s);
  REQUIRE(a);
  CHECK(a->body() == "data: first\n\ndata: second\n\n");
  auto b = c.read_response(5s);
  REQUIRE(b);
  CHECK(b->result() == http::status::ok);
  CHECK(b->body() == "{\"quick\":true}");
}

TEST_CASE("SSE: pushes from the handler itself and a custom status", "[net][stream]") {
  Router r;
  r.add(verb::get, "/audio", [](HttpExchange& ex) -> asio::awaitable<void> {
    auto w = co_await ex.start_stream("audio/mpeg", http::status::accepted);
    w->push("abc");
    w->push("def");
    w->close();
  });
  TestServer ts(std::move(r));
  HttpTestClient c(ts.port());
  auto res = c.roundtrip(verb::get, "/audio");
  CHECK(res.result() == http::status::accepted);
  CHECK(res[http::field::content_type] == "audio/mpeg");
  CHECK(res.body() == "abcdef");
}

TEST_CASE("SSE: a handler that throws after starting the stream ends it cleanly", "[net][stream]") {
  Router r;
  r.add(verb::get, "/fails", [](HttpExchange& ex) -> asio::awaitable<void> {
    auto w = co_await ex.start_stream("text/event-stream");
    w->push(sse_event("partial"));
    throw std::runtime_error("engine failed");
  });
  TestServer ts(std::move(r));
  HttpTestClient c(ts.port());
  auto res = c.roundtrip(verb::get, "/fails");
  CHECK(res.result() == http::status::ok);
  CHECK(res.body() == "data: partial\n\n");
  REQUIRE(ts.server().wait_idle(2s));
}

TEST_CASE("SSE back-pressure: push refuses when the client does not read, on_drain after it does",
          "[net][stream][backpressure]") {
  auto cfg = fast_config();
  cfg.stream_queue_limit = 4;
  cfg.write_timeout = 10s;  // this client pauses on purpose; do not drop it
  WriterSlot slot;
  TestServer ts(slot_router(slot), cfg);
  ts.on_shutdown([&] { slot.clear(); });
  HttpTestClient c(ts.port());
  REQUIRE_FALSE(c.write("POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"));
  http::response_parser<http::string_body> parser;
  parser.body_limit(1024 * 1024 * 1024);
  REQUIRE_FALSE(c.read_header(parser));
  auto w = slot.get();
  DrainCounter drains;
  w->set_on_drain([&] { drains.hit(); });

  // The client reads nothing more: the queue fills and stays bounded.
  auto accepted = fill_until_blocked(*w, drains, cfg.stream_queue_limit);
  REQUIRE_FALSE(accepted.empty());
  // Top up what the writer took while we waited; then it refuses and stays bounded.
  for (int i = 0;; ++i) {
    auto msg = "top-up " + std::to_string(i) + ";";
    auto r = w->push(msg);
    if (r != PushResult::ok) {
      CHECK(r == PushResult::full);
      break;
    }
    accepted.push_back(msg);
  }
  CHECK(w->pending() <= cfg.stream_queue_limit);
  CHECK_FALSE(slot.disconnected.is_set());

  // Now the client reads; the queue drains and the producer is told.
  int seen = drains.value();
  std::thread reader([&] { c.read_rest(parser, 20s); });
  bool drained = drains.wait_beyond(seen, 10s);
  CHECK(drained);
  PushResult last;
  while ((last = w->push("end")) == PushResult::full) drains.wait_beyond(drains.value(), 1s);
  CHECK(last == PushResult::ok);
  w->close();
  reader.join();
  REQUIRE(parser.is_done());

  std::string expected;
  for (const auto& m : accepted) expected += m;
  expected += "end";
  const auto& body = parser.get().body();
  CHECK(body.size() == expected.size());
  CHECK(body == expected);
  CHECK_FALSE(slot.disconnected.is_set());
}

TEST_CASE("SSE: the client leaving fires on_disconnect and closes the writer", "[net][stream]") {
  WriterSlot slot;
  TestServer ts(slot_router(slot));
  ts.on_shutdown([&] { slot.clear(); });
  HttpTestClient c(ts.port());
  REQUIRE_FALSE(c.write("POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"));
  http::response_parser<http::string_body> parser;
  REQUIRE_FALSE(c.read_header(parser));
  auto w = slot.get();
  REQUIRE(w->push(sse_event("first")) == PushResult::ok);
  c.close();
  CHECK(slot.disconnected.wait_for(2s));
  CHECK(w->closed());
  CHECK(w->push(sse_event("late")) == PushResult::closed);
  CHECK(ts.server().wait_idle(2s));
  CHECK(ts.server().wait_closed(2s));
}

TEST_CASE("SSE: stop() ends open streams and fires on_disconnect", "[net][stream][drain]") {
  WriterSlot slot;
  TestServer ts(slot_router(slot));
  ts.on_shutdown([&] { slot.clear(); });
  HttpTestClient c(ts.port());
  REQUIRE_FALSE(c.write("POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"));
  http::response_parser<http::string_body> parser;
  REQUIRE_FALSE(c.read_header(parser));
  auto w = slot.get();
  ts.server().begin_drain();
  // Draining lets a running stream go on.
  CHECK(w->push("still streaming") == PushResult::ok);
  CHECK_FALSE(slot.disconnected.is_set());
  ts.server().stop();
  CHECK(slot.disconnected.wait_for(2s));
  CHECK(w->push("after stop") == PushResult::closed);
  CHECK(c.wait_closed(2s));
  CHECK(ts.server().wait_idle(2s));
  CHECK(ts.server().wait_closed(2s));
}

TEST_CASE("SSE: a client that stops reading is dropped after write_timeout",
          "[net][stream][backpressure]") {
  auto cfg = fast_config();
  cfg.stream_queue_limit = 4;
  cfg.write_timeout = 300ms;
  WriterSlot slot;
  TestServer ts(slot_router(slot), cfg);
  ts.on_shutdown([&] { slot.clear(); });
  HttpTestClient c(ts.port());
  REQUIRE_FALSE(c.write("POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"));
  http::response_parser<http::string_body> parser;
  REQUIRE_FALSE(c.read_header(parser));
  auto w = slot.get();
  DrainCounter drains;
  w->set_on_drain([&] { drains.hit(); });
  // A producer that keeps going, waiting for on_drain whenever the queue is full, until the
  // writer closes: the socket fills up, a write stalls past write_timeout, the client is gone.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  PushResult r = PushResult::ok;
  for (int i = 0; r != PushResult::closed && std::chrono::steady_clock::now() < deadline; ++i) {
    int seen = drains.value();
    r = w->push(numbered(i, 64 * 1024));
    if (r == PushResult::full) drains.wait_beyond(seen, 100ms);
    CHECK(w->pending() <= cfg.stream_queue_limit);
  }
  CHECK(r == PushResult::closed);
  CHECK(slot.disconnected.wait_for(2s));
  CHECK(w->push("more") == PushResult::closed);
  CHECK(ts.server().wait_closed(2s));
}

TEST_CASE("watch_disconnect: fires when the client leaves during a slow handler",
          "[net][disconnect]") {
  Event started, gone, finished;
  std::atomic<bool> timer_cancelled{false};
  Router r;
  r.add(verb::post, "/v1/talk", [&](HttpExchange& ex) -> asio::awaitable<void> {
    auto work = std::make_shared<asio::steady_timer>(ex.executor(), 10s);
    ex.watch_disconnect([work, &gone] {
      gone.set();
      work->cancel();  // what a handler does: cancel the queued model work
    });
    started.set();
    boost::system::error_code ec;
    co_await work->async_wait(asio::redirect_error(asio::use_awaitable, ec));
    timer_cancelled = ec == asio::error::operation_aborted;
    co_await ex.respond(make_json(http::status::ok, "{}"));
    finished.set();
  });
  TestServer ts(std::move(r));
  HttpTestClient c(ts.port());
  REQUIRE_FALSE(c.write("POST /v1/talk HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"));
  REQUIRE(started.wait_for(2s));
  CHECK(ts.server().in_flight() == 1);
  c.close();
  CHECK(gone.wait_for(2s));
  CHECK(finished.wait_for(2s));
  CHECK(timer_cancelled);
  CHECK(ts.server().wait_idle(2s));
  CHECK(ts.server().wait_closed(2s));
}

TEST_CASE("watch_disconnect: silent when the response completes", "[net][disconnect]") {
  // The callback may reference the handler's state: it must not run once the handler is done.
  struct Probe {
    Event* destroyed;
    ~Probe() { destroyed->set(); }
  };
  Event fired, probe_gone;
  Router r;
  r.add(verb::get, "/quick", [&](HttpExchange& ex) -> asio::awaitable<void> {
    auto probe = std::make_shared<Probe>(Probe{&probe_gone});
    ex.watch_disconnect([probe, &fired] { fired.set(); });
    co_await ex.respond(make_json(http::status::ok, "{}"));
  });
  TestServer ts(std::move(r));
  HttpTestClient c(ts.port());
  auto res = c.roundtrip(verb::get, "/quick");
  CHECK(res.result() == http::status::ok);
  CHECK(res.keep_alive());  // the watcher stops with the response; the connection stays
  // Once the server dropped the callback it can no longer run; it must not have run before.
  REQUIRE(probe_gone.wait_for(2s));
  CHECK_FALSE(fired.is_set());
  // The connection serves the next request, and the client leaving now fires nothing.
  CHECK(c.roundtrip(verb::get, "/quick").result() == http::status::ok);
  c.close();
  CHECK(ts.server().wait_idle(2s));
  std::this_thread::sleep_for(50ms);
  CHECK_FALSE(fired.is_set());
}

TEST_CASE("watch_disconnect: every watcher hears the disconnect, streams included",
          "[net][disconnect][stream]") {
  Event handler_gone;
  WriterSlot slot;
  Router r;
  r.add(verb::post, "/v1/talk", [&](HttpExchange& ex) -> asio::awaitable<void> {
    ex.watch_disconnect([&handler_gone] { handler_gone.set(); });
    slot.put(co_await ex.start_stream("text/event-stream"));
  });
  TestServer ts(std::move(r));
  ts.on_shutdown([&] { slot.clear(); });
  HttpTestClient c(ts.port());
  REQUIRE_FALSE(c.write("POST /v1/talk HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"));
  http::response_parser<http::string_body> parser;
  REQUIRE_FALSE(c.read_header(parser));
  auto w = slot.get();
  c.close();
  CHECK(handler_gone.wait_for(2s));
  CHECK(slot.disconnected.wait_for(2s));
  CHECK(ts.server().wait_closed(2s));
}

TEST_CASE("streams: counted with their status when they end", "[net][stream][metrics]") {
  WriterSlot slot;
  TestServer ts(slot_router(slot));
  ts.on_shutdown([&] { slot.clear(); });
  {
    HttpTestClient c(ts.port());
    REQUIRE_FALSE(c.write("POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"));
    auto w = slot.get();
    w->push("x");
    w->close();
    auto res = c.read_response();
    REQUIRE(res);
    CHECK(res->body() == "x");
  }
  REQUIRE(ts.server().wait_closed(2s));
  CHECK(ts.metrics().render_prometheus().find(
            R"(talkserve_http_requests_total{code="200",route="events"} 1)") != std::string::npos);
}
