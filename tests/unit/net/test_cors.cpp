// CORS: preflights from configured origins get 204 with the Access-Control-Allow-* headers;
// other origins get no Access-Control-Allow-Origin, so the browser blocks them.

#include <catch2/catch.hpp>

#include "test_support.hpp"

using namespace talkserve::net;
using namespace talkserve::net::test;
using boost::beast::http::verb;

namespace {

Router cors_router() {
  Router r;
  r.add(verb::post, "/v1/chat/completions", [](HttpExchange& ex) -> asio::awaitable<void> {
    co_await ex.respond(make_json(http::status::ok, R"({"ok":true})"));
  });
  return r;
}

HttpConfig cors_config(std::vector<std::string> origins) {
  auto cfg = fast_config();
  cfg.cors_allowed_origins = std::move(origins);
  return cfg;
}

StringResponse preflight(HttpTestClient& c, const std::string& origin) {
  return c.roundtrip(verb::options, "/v1/chat/completions", {},
                     {{"Origin", origin},
                      {"Access-Control-Request-Method", "POST"},
                      {"Access-Control-Request-Headers", "authorization, content-type"}});
}

}  // namespace

TEST_CASE("CORS: preflight from an allowed origin", "[net][cors]") {
  TestServer ts(cors_router(), cors_config({"https://app.example", "http://localhost:5173"}));
  HttpTestClient c(ts.port());
  auto res = preflight(c, "https://app.example");
  CHECK(res.result() == http::status::no_content);
  CHECK(res[http::field::access_control_allow_origin] == "https://app.example");
  CHECK(res[http::field::vary] == "Origin");
  auto methods = std::string(res[http::field::access_control_allow_methods]);
  CHECK(methods.find("POST") != std::string::npos);
  CHECK(methods.find("GET") != std::string::npos);
  auto headers = std::string(res[http::field::access_control_allow_headers]);
  CHECK(headers.find("Authorization") != std::string::npos);
  CHECK(headers.find("Content-Type") != std::string::npos);
  CHECK_FALSE(res[http::field::access_control_max_age].empty());
  CHECK(res.body().empty());
  CHECK(res.keep_alive());

  // The actual request that follows carries the origin and exposes our headers.
  auto post =
      c.roundtrip(verb::post, "/v1/chat/completions", "{}", {{"Origin", "http://localhost:5173"}});
  CHECK(post.result() == http::status::ok);
  CHECK(post[http::field::access_control_allow_origin] == "http://localhost:5173");
  auto exposed = std::string(post[http::field::access_control_expose_headers]);
  CHECK(exposed.find("X-Request-Id") != std::string::npos);
  CHECK(exposed.find("Retry-After") != std::string::npos);
}

TEST_CASE("CORS: a disallowed origin gets no Access-Control-Allow-Origin", "[net][cors]") {
  TestServer ts(cors_router(), cors_config({"https://app.example"}));
  HttpTestClient c(ts.port());
  auto res = preflight(c, "https://evil.example");
  CHECK(res[http::field::access_control_allow_origin].empty());
  auto post = c.roundtrip(verb::post, "/v1/chat/completions", "{}",
                          {{"Origin", "https://app.example.evil.example"}});
  CHECK(post.result() == http::status::ok);
  CHECK(post[http::field::access_control_allow_origin].empty());
}

TEST_CASE("CORS: \"*\" allows every origin without Vary", "[net][cors]") {
  TestServer ts(cors_router(), cors_config({"*"}));
  HttpTestClient c(ts.port());
  auto res = preflight(c, "https://anything.example");
  CHECK(res.result() == http::status::no_content);
  CHECK(res[http::field::access_control_allow_origin] == "*");
  CHECK(res[http::field::vary].empty());
}

TEST_CASE("CORS: off when no origins are configured", "[net][cors]") {
  TestServer ts(cors_router());
  HttpTestClient c(ts.port());
  auto res = preflight(c, "https://app.example");
  // No preflight handling: OPTIONS is just a method the route does not take.
  CHECK(res.result() == http::status::method_not_allowed);
  CHECK(res[http::field::access_control_allow_origin].empty());
  auto post =
      c.roundtrip(verb::post, "/v1/chat/completions", "{}", {{"Origin", "https://app.example"}});
  CHECK(post[http::field::access_control_allow_origin].empty());
}

TEST_CASE("CORS: error answers carry the CORS headers too", "[net][cors]") {
  TestServer ts(cors_router(), cors_config({"https://app.example"}));
  HttpTestClient c(ts.port());
  auto res = c.roundtrip(verb::get, "/nowhere", {}, {{"Origin", "https://app.example"}});
  CHECK(res.result() == http::status::not_found);
  CHECK(res[http::field::access_control_allow_origin] == "https://app.example");
}
