// One HTTP/1.1 connection as clients use it: keep-alive and pipelining, HTTP/1.0, the idle
// timeout, trace ids, handler failures, and the request metrics.

#include <atomic>
#include <catch2/catch.hpp>
#include <regex>

#include "test_support.hpp"

using namespace talkserve::net;
using namespace talkserve::net::test;
using boost::beast::http::verb;

namespace {

// Answers with the request body prefixed by the route's name.
asio::awaitable<void> echo(HttpExchange& ex) {
  Response res{http::status::ok, ex.request().version()};
  res.set(http::field::content_type, "text/plain");
  res.body() = "echo:" + ex.request().body();
  co_await ex.respond(std::move(res));
}

// Answers with the trace id the server resolved for the request.
asio::awaitable<void> trace(HttpExchange& ex) {
  Response res{http::status::ok, ex.request().version()};
  res.body() = ex.context().trace_id;
  co_await ex.respond(std::move(res));
}

Router basic_router() {
  Router r;
  r.add(verb::post, "/echo", echo);
  r.add(verb::get, "/echo", echo);
  r.add(verb::get, "/trace", trace);
  return r;
}

bool is_hex32(const std::string& s) {
  return std::regex_match(s, std::regex("[0-9a-f]{32}"));
}

bool has_line(const std::string& text, const std::string& line) {
  return text.find(line + "\n") != std::string::npos;
}

}  // namespace

TEST_CASE("keep-alive: two requests share one connection", "[net][http]") {
  TestServer ts(basic_router());
  HttpTestClient c(ts.port());

  auto first = c.roundtrip(verb::post, "/echo", "one");
  CHECK(first.result() == http::status::ok);
  CHECK(first.body() == "echo:one");
  CHECK(first.keep_alive());
  CHECK(first[http::field::server].starts_with("talkserve/"));

  auto second = c.roundtrip(verb::post, "/echo", "two");
  CHECK(second.body() == "echo:two");
  CHECK(ts.server().connections() == 1);
}

TEST_CASE("keep-alive: pipelined requests are answered in order", "[net][http]") {
  TestServer ts(basic_router());
  HttpTestClient c(ts.port());
  std::string both =
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nfirst"
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nsecond";
  REQUIRE_FALSE(c.write(both));
  auto a = c.read_response();
  auto b = c.read_response();
  REQUIRE(a);
  REQUIRE(b);
  CHECK(a->body() == "echo:first");
  CHECK(b->body() == "echo:second");
}

TEST_CASE("keep-alive: Connection: close is honoured", "[net][http]") {
  TestServer ts(basic_router());
  HttpTestClient c(ts.port());
  auto res = c.roundtrip(verb::get, "/echo", {}, {{"Connection", "close"}});
  CHECK(res.result() == http::status::ok);
  CHECK_FALSE(res.keep_alive());
  CHECK(c.wait_closed(2s));
}

TEST_CASE("keep-alive: HTTP/1.0 closes unless it asks for keep-alive", "[net][http]") {
  TestServer ts(basic_router());
  {
    HttpTestClient c(ts.port());
    REQUIRE_FALSE(c.write("GET /echo HTTP/1.0\r\n\r\n"));
    auto res = c.read_response();
    REQUIRE(res);
    CHECK(res->version() == 10);
    CHECK(res->body() == "echo:");
    CHECK_FALSE(res->keep_alive());
    CHECK(c.wait_closed(2s));
  }
  {
    HttpTestClient c(ts.port());
    auto res = c.roundtrip(verb::get, "/echo", {}, {{"Connection", "keep-alive"}}, 10);
    CHECK(res.keep_alive());
    res = c.roundtrip(verb::get, "/echo", {}, {{"Connection", "keep-alive"}}, 10);
    CHECK(res.result() == http::status::ok);
  }
}

TEST_CASE("keep-alive: an idle connection is closed after keepalive_timeout", "[net][http]") {
  auto cfg = fast_config();
  cfg.keepalive_timeout = 200ms;
  TestServer ts(basic_router(), cfg);
  HttpTestClient c(ts.port());
  c.roundtrip(verb::get, "/echo");
  auto start = std::chrono::steady_clock::now();
  CHECK(c.wait_closed(2s));
  CHECK(std::chrono::steady_clock::now() - start >= 100ms);
}

TEST_CASE("trace id: X-Request-Id from the client is echoed", "[net][http][trace]") {
  TestServer ts(basic_router());
  HttpTestClient c(ts.port());
  auto res = c.roundtrip(verb::get, "/trace", {}, {{"X-Request-Id", "req-abc-123"}});
  CHECK(res["X-Request-Id"] == "req-abc-123");
  CHECK(res.body() == "req-abc-123");  // the handler sees the same id
}

TEST_CASE("trace id: traceparent wins over X-Request-Id", "[net][http][trace]") {
  TestServer ts(basic_router());
  HttpTestClient c(ts.port());
  const std::string tid = "4bf92f3577b34da6a3ce929d0e0e4736";
  auto res = c.roundtrip(
      verb::get, "/trace", {},
      {{"traceparent", "00-" + tid + "-00f067aa0ba902b7-01"}, {"X-Request-Id", "ignored"}});
  CHECK(res["X-Request-Id"] == tid);
  CHECK(res.body() == tid);
}

TEST_CASE("trace id: generated when absent or unusable, on errors too", "[net][http][trace]") {
  TestServer ts(basic_router());
  HttpTestClient c(ts.port());
  auto a = c.roundtrip(verb::get, "/trace");
  auto b = c.roundtrip(verb::get, "/trace", {},
                       {{"traceparent", "garbage"}, {"X-Request-Id", "has space"}});
  auto id_a = std::string(a["X-Request-Id"]);
  auto id_b = std::string(b["X-Request-Id"]);
  CHECK(is_hex32(id_a));
  CHECK(is_hex32(id_b));
  CHECK(id_a != id_b);
  CHECK(a.body() == id_a);

  auto missing = c.roundtrip(verb::get, "/missing", {}, {{"X-Request-Id", "lost-1"}});
  CHECK(missing.result() == http::status::not_found);
  CHECK(missing["X-Request-Id"] == "lost-1");
}

TEST_CASE("handler failures become a 500 in the OpenAI error shape", "[net][http]") {
  std::atomic<int> calls{0};
  Router r;
  r.add(verb::get, "/throws", [&](HttpExchange&) -> asio::awaitable<void> {
    ++calls;
    throw std::runtime_error("model exploded");
    co_return;
  });
  r.add(verb::get, "/silent", [&](HttpExchange&) -> asio::awaitable<void> {
    ++calls;
    co_return;
  });
  r.add(verb::get, "/twice", [&](HttpExchange& ex) -> asio::awaitable<void> {
    ++calls;
    co_await ex.respond(make_json(http::status::ok, "{}"));
    co_await ex.respond(make_json(http::status::ok, "{}"));  // a bug: throws, not sent
  });
  TestServer ts(std::move(r));
  HttpTestClient c(ts.port());

  auto res = c.roundtrip(verb::get, "/throws");
  CHECK(res.result() == http::status::internal_server_error);
  auto [type, code] = error_type_and_code(res.body());
  CHECK(type == "server_error");
  CHECK(code == "internal_error");

  res = c.roundtrip(verb::get, "/silent");
  CHECK(res.result() == http::status::internal_server_error);
  CHECK(error_type_and_code(res.body()).second == "internal_error");

  res = c.roundtrip(verb::get, "/twice");
  CHECK(res.result() == http::status::ok);
  CHECK(res.body() == "{}");
  // The connection survived all of that.
  res = c.roundtrip(verb::get, "/silent");
  CHECK(res.result() == http::status::internal_server_error);
  CHECK(calls == 4);
}

TEST_CASE("metrics: requests are counted by route and status", "[net][http][metrics]") {
  Router r;
  r.add(verb::get, "/v1/models", echo, route_options("models"));
  r.add(verb::post, "/v1/chat/completions", echo);
  TestServer ts(std::move(r));
  {
    HttpTestClient c(ts.port());
    c.roundtrip(verb::get, "/v1/models");
    c.roundtrip(verb::get, "/v1/models");
    c.roundtrip(verb::post, "/v1/chat/completions", "{}");
    c.roundtrip(verb::get, "/v1/chat/completions");  // 405
    c.roundtrip(verb::get, "/nowhere");              // 404
    c.close();
  }
  // Counted once the connection has finished with each request.
  REQUIRE(ts.server().wait_closed(2s));
  auto text = ts.metrics().render_prometheus();
  INFO(text);
  CHECK(has_line(text, R"(talkserve_http_requests_total{code="200",route="models"} 2)"));
  CHECK(has_line(text,
                 R"(talkserve_http_requests_total{code="200",route="/v1/chat/completions"} 1)"));
  CHECK(has_line(text, R"(talkserve_http_requests_total{code="405",route="-"} 1)"));
  CHECK(has_line(text, R"(talkserve_http_requests_total{code="404",route="-"} 1)"));
  CHECK(has_line(text, R"(talkserve_http_request_duration_seconds_count{route="models"} 2)"));
}
