// The small pieces handlers build answers from: the OpenAI error body, SSE framing, the
// config check, and await_callback (work finishing on another thread resumes the coroutine
// on its own executor).

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "talkserve/net/async_bridge.hpp"
#include "talkserve/net/exchange.hpp"
#include "talkserve/net/http_config.hpp"
#include "test_support.hpp"

using namespace talkserve::net;
using namespace talkserve::net::test;

TEST_CASE("error_body: OpenAI error shape, null code when empty", "[net][responses]") {
  auto j = nlohmann::json::parse(error_body("bad \"input\"", "invalid_request_error", "bad_x"));
  CHECK(j["error"]["message"] == "bad \"input\"");
  CHECK(j["error"]["type"] == "invalid_request_error");
  CHECK(j["error"]["code"] == "bad_x");

  j = nlohmann::json::parse(error_body("m", "server_error", ""));
  CHECK(j["error"]["code"].is_null());

  // Client bytes echoed into a message never break the JSON.
  std::string invalid_utf8 = "no route for /\xff\xfe";
  CHECK_NOTHROW(nlohmann::json::parse(error_body(invalid_utf8, "t", "c")));
}

TEST_CASE("make_error: status, JSON content type and length", "[net][responses]") {
  auto res = make_error(http::status::too_many_requests, "slow down", "rate_limit_error",
                        "rate_limited", 10);
  CHECK(res.result() == http::status::too_many_requests);
  CHECK(res.version() == 10);
  CHECK(res[http::field::content_type] == "application/json");
  CHECK(res[http::field::content_length] == std::to_string(res.body().size()));
  auto [type, code] = error_type_and_code(res.body());
  CHECK(type == "rate_limit_error");
  CHECK(code == "rate_limited");
}

TEST_CASE("sse_event: one data line per payload line, blank line at the end", "[net][responses]") {
  CHECK(sse_event("hello") == "data: hello\n\n");
  CHECK(sse_event("[DONE]") == "data: [DONE]\n\n");
  CHECK(sse_event("a\nb") == "data: a\ndata: b\n\n");
  CHECK(sse_event("x", "delta") == "event: delta\ndata: x\n\n");
  CHECK(sse_event("") == "data: \n\n");
}

TEST_CASE("HttpConfig::validate names the offending key", "[net][config]") {
  CHECK_NOTHROW(HttpConfig{}.validate());
  CHECK_NOTHROW(fast_config().validate());

  auto fails_with = [](HttpConfig cfg, const std::string& key) {
    try {
      cfg.validate();
      FAIL("expected validate() to throw for " << key);
    } catch (const std::invalid_argument& e) {
      INFO(e.what());
      CHECK(std::string(e.what()).find("http." + key) == 0);
    }
  };
  HttpConfig c;
  c.host = "";
  fails_with(c, "host");
  c = {};
  c.io_threads = -1;
  fails_with(c, "io_threads");
  c = {};
  c.max_header_bytes = 100;
  fails_with(c, "max_header_bytes");
  c = {};
  c.max_body_bytes = 0;
  fails_with(c, "max_body_bytes");
  c = {};
  c.header_timeout = std::chrono::milliseconds(0);
  fails_with(c, "header_timeout_ms");
  c = {};
  c.stream_queue_limit = 0;
  fails_with(c, "stream_queue_limit");
  c = {};
  c.cors_allowed_origins = {"https://ok.example", "example.com"};
  fails_with(c, "cors_allowed_origins");
  c = {};
  c.cors_allowed_origins = {"*", "http://localhost:8080"};
  CHECK_NOTHROW(c.validate());
}

TEST_CASE("HttpServer refuses an invalid config at construction", "[net][config]") {
  asio::io_context ioc;
  Router router;
  talkserve::obs::MetricsRegistry metrics;
  HttpConfig cfg = fast_config();
  cfg.stream_queue_limit = 0;
  CHECK_THROWS_AS(HttpServer(ioc, cfg, router, metrics), std::invalid_argument);
}

TEST_CASE("HttpServer::start reports a port that cannot be bound", "[net][config]") {
  asio::io_context ioc;
  Router router;
  talkserve::obs::MetricsRegistry metrics;
  HttpServer first(ioc, fast_config(), router, metrics);
  uint16_t port = first.start();
  REQUIRE(port != 0);

  HttpConfig cfg = fast_config();
  cfg.port = port;
  HttpServer second(ioc, cfg, router, metrics);
  CHECK_THROWS_AS(second.start(), std::runtime_error);

  cfg.host = "not-an-ip";
  HttpServer third(ioc, cfg, router, metrics);
  CHECK_THROWS_AS(third.start(), std::runtime_error);
}

TEST_CASE("await_callback resumes on the coroutine's executor with the value",
          "[net][async_bridge]") {
  asio::io_context ioc;
  std::thread worker;
  std::function<void(int)> complete;
  std::thread::id resumed_on;
  int result = 0;

  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        result = co_await await_callback<int>([&](std::function<void(int)> cb) {
          complete = cb;
          // The executor finishes the work on its own thread, twice by mistake.
          worker = std::thread([cb] {
            cb(42);
            cb(7);  // ignored: exactly one completion counts
          });
        });
        resumed_on = std::this_thread::get_id();
      },
      asio::detached);
  ioc.run();
  worker.join();
  CHECK(result == 42);
  CHECK(resumed_on == std::this_thread::get_id());
  // A straggling call after the coroutine finished is harmless.
  complete(9);
  ioc.restart();
  ioc.run();
  CHECK(result == 42);
}
