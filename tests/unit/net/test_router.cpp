// Router::match on its own, then routing as a client sees it: path parameters, 404 and 405
// with the Allow header, all in the OpenAI error shape.

#include <catch2/catch.hpp>

#include "talkserve/net/router.hpp"
#include "test_support.hpp"

using namespace talkserve::net;
using namespace talkserve::net::test;
using boost::beast::http::verb;

namespace {

HttpHandler reply(std::string text) {
  return [text](HttpExchange& ex) -> asio::awaitable<void> {
    Response res{http::status::ok, ex.request().version()};
    res.set(http::field::content_type, "text/plain");
    res.body() = text;
    co_await ex.respond(std::move(res));
  };
}

// Echoes the route name and every path parameter as "name|k=v|k=v".
asio::awaitable<void> echo_params(HttpExchange& ex) {
  std::string out = ex.context().route_name;
  for (const auto& [k, v] : ex.context().params) out += "|" + k + "=" + v;
  Response res{http::status::ok, ex.request().version()};
  res.body() = out;
  co_await ex.respond(std::move(res));
}

}  // namespace

TEST_CASE("router: literal paths match exactly one route", "[net][router]") {
  Router r;
  r.add(verb::get, "/healthz", reply("h"));
  r.add(verb::get, "/readyz", reply("r"));

  auto m = r.match(verb::get, "/healthz");
  REQUIRE(m.kind == RouteMatch::Kind::found);
  REQUIRE(m.route != nullptr);
  CHECK(m.route->pattern == "/healthz");
  CHECK(m.route->options.name == "/healthz");  // the name defaults to the pattern
  CHECK(m.params.empty());

  CHECK(r.match(verb::get, "/readyz").route->pattern == "/readyz");
  CHECK(r.match(verb::get, "/nope").kind == RouteMatch::Kind::not_found);
  CHECK(r.match(verb::get, "/healthz/extra").kind == RouteMatch::Kind::not_found);
  CHECK(r.match(verb::get, "/").kind == RouteMatch::Kind::not_found);
}

TEST_CASE("router: parameters capture one segment each", "[net][router]") {
  Router r;
  r.add(verb::get, "/v1/clips/{id}", reply("clip"), route_options("clips"));
  r.add(verb::post, "/v1/users/{user}/keys/{key}", reply("key"));

  auto m = r.match(verb::get, "/v1/clips/abc123.mp4");
  REQUIRE(m.kind == RouteMatch::Kind::found);
  CHECK(m.route->options.name == "clips");
  REQUIRE(m.params.size() == 1);
  CHECK(m.params.at("id") == "abc123.mp4");

  m = r.match(verb::post, "/v1/users/alice/keys/k1");
  REQUIRE(m.kind == RouteMatch::Kind::found);
  CHECK(m.params.at("user") == "alice");
  CHECK(m.params.at("key") == "k1");

  // A parameter never spans segments, and never matches an absent segment.
  CHECK(r.match(verb::get, "/v1/clips/a/b").kind == RouteMatch::Kind::not_found);
  CHECK(r.match(verb::get, "/v1/clips").kind == RouteMatch::Kind::not_found);
  CHECK(r.match(verb::get, "/v1/clips/").kind == RouteMatch::Kind::not_found);
}

TEST_CASE("router: the query string is not part of the path", "[net][router]") {
  Router r;
  r.add(verb::get, "/v1/clips/{id}", reply("clip"));
  auto m = r.match(verb::get, "/v1/clips/xyz?download=1&t=2");
  REQUIRE(m.kind == RouteMatch::Kind::found);
  CHECK(m.params.at("id") == "xyz");
  CHECK(r.match(verb::get, "/v1/clips?x=1").kind == RouteMatch::Kind::not_found);
}

TEST_CASE("router: known path with another method is 405 with the allowed methods",
          "[net][router]") {
  Router r;
  r.add(verb::post, "/v1/chat/completions", reply("chat"));
  r.add(verb::get, "/v1/models", reply("models"));
  r.add(verb::delete_, "/v1/models", reply("deleted"));

  auto m = r.match(verb::get, "/v1/chat/completions");
  CHECK(m.kind == RouteMatch::Kind::method_not_allowed);
  CHECK(m.route == nullptr);
  CHECK(m.allow == "POST");

  m = r.match(verb::put, "/v1/models");
  CHECK(m.kind == RouteMatch::Kind::method_not_allowed);
  CHECK(m.allow == "GET, DELETE");

  // The route for the right method is found even when another method was listed first.
  m = r.match(verb::delete_, "/v1/models");
  REQUIRE(m.kind == RouteMatch::Kind::found);
  CHECK(m.route->method == verb::delete_);
}

TEST_CASE("router: HEAD is served by GET routes but not by WebSocket routes", "[net][router]") {
  Router r;
  r.add(verb::get, "/metrics", reply("m"));
  r.add_websocket("/v1/stream",
                  [](const RequestContext&) { return std::shared_ptr<WebSocketHandler>{}; });

  auto m = r.match(verb::head, "/metrics");
  REQUIRE(m.kind == RouteMatch::Kind::found);
  CHECK(m.route->pattern == "/metrics");

  m = r.match(verb::head, "/v1/stream");
  CHECK(m.kind == RouteMatch::Kind::method_not_allowed);
  CHECK(m.allow == "GET");

  m = r.match(verb::get, "/v1/stream");
  REQUIRE(m.kind == RouteMatch::Kind::found);
  CHECK(m.route->websocket);
  CHECK_FALSE(m.route->handler);
}

TEST_CASE("router: patterns must start with a slash", "[net][router]") {
  Router r;
  CHECK_THROWS_AS(r.add(verb::get, "healthz", reply("x")), std::invalid_argument);
  CHECK_THROWS_AS(r.add(verb::get, "", reply("x")), std::invalid_argument);
  CHECK_THROWS_AS(r.add_websocket("ws", {}), std::invalid_argument);
}

TEST_CASE("routing over HTTP: path parameters reach the handler", "[net][router][http]") {
  Router r;
  r.add(verb::get, "/v1/clips/{id}", echo_params, route_options("clips"));
  r.add(verb::post, "/v1/users/{user}/items/{item}", echo_params);
  TestServer ts(std::move(r));
  HttpTestClient c(ts.port());

  auto res = c.roundtrip(verb::get, "/v1/clips/0123abcd.mp4?x=1");
  CHECK(res.result() == http::status::ok);
  CHECK(res.body() == "clips|id=0123abcd.mp4");

  res = c.roundtrip(verb::post, "/v1/users/bob/items/7", "{}");
  CHECK(res.result() == http::status::ok);
  CHECK(res.body() == "/v1/users/{user}/items/{item}|item=7|user=bob");
}

TEST_CASE("routing over HTTP: unknown path is 404 in the OpenAI error shape",
          "[net][router][http]") {
  Router r;
  r.add(verb::get, "/healthz", reply("ok"));
  TestServer ts(std::move(r));
  HttpTestClient c(ts.port());

  auto res = c.roundtrip(verb::get, "/v1/nothing-here");
  CHECK(res.result() == http::status::not_found);
  CHECK(res[http::field::content_type] == "application/json");
  auto [type, code] = error_type_and_code(res.body());
  CHECK(type == "invalid_request_error");
  CHECK(code == "not_found");
  CHECK(res.keep_alive());  // an error answer does not cost the connection

  res = c.roundtrip(verb::get, "/healthz");
  CHECK(res.result() == http::status::ok);
  CHECK(res.body() == "ok");
}

TEST_CASE("routing over HTTP: wrong method is 405 with Allow", "[net][router][http]") {
  Router r;
  r.add(verb::post, "/v1/chat/completions", reply("chat"));
  r.add(verb::get, "/v1/models", reply("models"));
  r.add(verb::post, "/v1/models", reply("created"));
  TestServer ts(std::move(r));
  HttpTestClient c(ts.port());

  auto res = c.roundtrip(verb::get, "/v1/chat/completions");
  CHECK(res.result() == http::status::method_not_allowed);
  CHECK(res[http::field::allow] == "POST");
  auto [type, code] = error_type_and_code(res.body());
  CHECK(type == "invalid_request_error");
  CHECK(code == "method_not_allowed");

  res = c.roundtrip(verb::delete_, "/v1/models");
  CHECK(res.result() == http::status::method_not_allowed);
  CHECK(res[http::field::allow] == "GET, POST");
  CHECK(error_type_and_code(res.body()).second == "method_not_allowed");
}

TEST_CASE("routing over HTTP: HEAD on a GET route sends the head without the body",
          "[net][router][http]") {
  Router r;
  r.add(verb::get, "/hello", reply("hello world"));
  TestServer ts(std::move(r));
  HttpTestClient c(ts.port());

  auto res = c.roundtrip(verb::head, "/hello");
  CHECK(res.result() == http::status::ok);
  CHECK(res[http::field::content_length] == "11");
  CHECK(res.body().empty());
  // The connection is still in step: the next request gets its own answer.
  res = c.roundtrip(verb::get, "/hello");
  CHECK(res.body() == "hello world");
}
