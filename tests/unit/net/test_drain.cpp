// Shutdown as systemd drives it: begin_drain stops accepting and closes idle connections,
// in-flight requests finish (wait_idle), stop closes what is left.

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <catch2/catch.hpp>

#include "talkserve/net/async_bridge.hpp"
#include "test_support.hpp"

using namespace talkserve::net;
using namespace talkserve::net::test;
using boost::beast::http::verb;

namespace {

// A handler parked on "model work" that the test completes by hand, as an executor would.
struct ParkedWork {
  std::mutex mutex;
  std::function<void(std::string)> complete;
  Event started;

  void finish(std::string result) {
    std::function<void(std::string)> fn;
    {
      std::lock_guard lock(mutex);
      fn = complete;
    }
    REQUIRE(fn);
    fn(std::move(result));
  }
};

Router drain_router(ParkedWork& work) {
  Router r;
  r.add(verb::post, "/v1/completions", [&work](HttpExchange& ex) -> asio::awaitable<void> {
    auto text = co_await await_callback<std::string>([&work](auto done) {
      {
        std::lock_guard lock(work.mutex);
        work.complete = done;
      }
      work.started.set();
    });
    co_await ex.respond(make_json(http::status::ok, text));
  });
  r.add(verb::get, "/healthz", [](HttpExchange& ex) -> asio::awaitable<void> {
    co_await ex.respond(make_json(http::status::ok, "{}"));
  });
  return r;
}

}  // namespace

TEST_CASE("drain: wait_idle is immediately true with nothing in flight", "[net][drain]") {
  ParkedWork work;
  TestServer ts(drain_router(work));
  CHECK_FALSE(ts.server().draining());
  CHECK(ts.server().in_flight() == 0);
  CHECK(ts.server().wait_idle(0ms));
  ts.server().begin_drain();
  CHECK(ts.server().draining());
  CHECK(ts.server().wait_idle(0ms));
}

TEST_CASE("drain: begin_drain stops serving new connections", "[net][drain]") {
  ParkedWork work;
  TestServer ts(drain_router(work));
  {
    HttpTestClient before(ts.port());
    CHECK(before.roundtrip(verb::get, "/healthz").result() == http::status::ok);
  }
  ts.server().begin_drain();
  beast::error_code ec;
  auto late = HttpTestClient::try_connect(ts.port(), ec);
  if (late) {
    // Accepted before the listener closed: the connection ends without an answer.
    late->write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    std::string received;
    CHECK(late->wait_closed(2s, &received));
    CHECK(received.empty());
  } else {
    // Refused, or reset from the backlog when the listener closed.
    INFO(ec.message());
    CHECK((ec == asio::error::connection_refused || ec == asio::error::connection_reset));
  }
}

TEST_CASE("drain: idle keep-alive connections are closed at once", "[net][drain]") {
  ParkedWork work;
  TestServer ts(drain_router(work));
  HttpTestClient c(ts.port());
  CHECK(c.roundtrip(verb::get, "/healthz").keep_alive());
  auto start = std::chrono::steady_clock::now();
  ts.server().begin_drain();
  CHECK(c.wait_closed(2s));
  CHECK(std::chrono::steady_clock::now() - start < 1500ms);  // not the keep-alive timeout
  CHECK(ts.server().wait_closed(2s));
}

TEST_CASE("drain: in-flight requests finish, then wait_idle returns true", "[net][drain]") {
  ParkedWork work;
  TestServer ts(drain_router(work));
  HttpTestClient c(ts.port());
  REQUIRE_FALSE(c.write("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"));
  REQUIRE(work.started.wait_for(2s));
  CHECK(ts.server().in_flight() == 1);

  ts.server().begin_drain();
  CHECK_FALSE(ts.server().wait_idle(100ms));  // the request is still running
  work.finish(R"({"text":"once upon a time"})");
  CHECK(ts.server().wait_idle(2s));
  CHECK(ts.server().in_flight() == 0);

  auto res = c.read_response();
  REQUIRE(res);
  CHECK(res->result() == http::status::ok);
  CHECK(res->body() == R"({"text":"once upon a time"})");
  CHECK_FALSE(res->keep_alive());  // draining: the connection is not reused
  CHECK(c.wait_closed(2s));
  CHECK(ts.server().wait_closed(2s));
}

TEST_CASE("drain: stop() closes connections and cancels watching handlers", "[net][drain]") {
  Event started, gone;
  Router r;
  r.add(verb::post, "/v1/talk", [&](HttpExchange& ex) -> asio::awaitable<void> {
    auto work = std::make_shared<asio::steady_timer>(ex.executor(), 10s);
    ex.watch_disconnect([work, &gone] {
      gone.set();
      work->cancel();
    });
    started.set();
    boost::system::error_code ec;
    co_await work->async_wait(asio::redirect_error(asio::use_awaitable, ec));
    co_await ex.respond(make_json(http::status::service_unavailable, "{}"));
  });
  TestServer ts(std::move(r));
  HttpTestClient busy(ts.port());
  HttpTestClient idle(ts.port());
  REQUIRE_FALSE(busy.write("POST /v1/talk HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"));
  REQUIRE(started.wait_for(2s));

  ts.server().begin_drain();
  CHECK(idle.wait_closed(2s));
  CHECK_FALSE(ts.server().wait_idle(50ms));
  ts.server().stop();
  CHECK(gone.wait_for(2s));
  CHECK(busy.wait_closed(2s));
  CHECK(ts.server().wait_idle(2s));
  CHECK(ts.server().wait_closed(2s));
  CHECK(ts.server().connections() == 0);
}
