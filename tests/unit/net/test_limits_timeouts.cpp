// What a connection refuses: bodies over the route's limit (413), oversized heads (431),
// malformed requests (400), and clients too slow to send their head or body.

#include <catch2/catch.hpp>

#include "test_support.hpp"

using namespace talkserve::net;
using namespace talkserve::net::test;
using boost::beast::http::verb;

namespace {

asio::awaitable<void> body_size(HttpExchange& ex) {
  Response res{http::status::ok, ex.request().version()};
  res.body() = std::to_string(ex.request().body().size());
  co_await ex.respond(std::move(res));
}

// /small takes 100 bytes, /big 256 KiB (above the 64 KiB default), /default the default.
Router limit_router() {
  Router r;
  r.add(verb::post, "/small", body_size, route_options("small", 100));
  r.add(verb::post, "/big", body_size, route_options("big", 256 * 1024));
  r.add(verb::post, "/default", body_size, route_options("default"));
  return r;
}

std::string post_head(const std::string& target, std::size_t content_length) {
  return "POST " + target +
         " HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(content_length) + "\r\n\r\n";
}

void check_413(const std::optional<StringResponse>& res) {
  REQUIRE(res);
  CHECK(res->result() == http::status::payload_too_large);
  auto [type, code] = error_type_and_code(res->body());
  CHECK(type == "invalid_request_error");
  CHECK(code == "body_too_large");
  CHECK_FALSE(res->keep_alive());
}

}  // namespace

TEST_CASE("body limit: bodies within the route's limit are accepted", "[net][limits]") {
  TestServer ts(limit_router());
  HttpTestClient c(ts.port());
  CHECK(c.roundtrip(verb::post, "/small", std::string(100, 'x')).body() == "100");
  CHECK(c.roundtrip(verb::post, "/default", std::string(64 * 1024, 'x')).body() == "65536");
}

TEST_CASE("body limit: a route may allow more than the default", "[net][limits]") {
  TestServer ts(limit_router());
  HttpTestClient c(ts.port());
  auto res = c.roundtrip(verb::post, "/big", std::string(200 * 1024, 'x'));
  CHECK(res.result() == http::status::ok);
  CHECK(res.body() == std::to_string(200 * 1024));
}

TEST_CASE("body limit: Content-Length over the limit is 413 before the body is read",
          "[net][limits]") {
  TestServer ts(limit_router());
  SECTION("per-route limit") {
    HttpTestClient c(ts.port());
    // Only the head is sent: the answer must not wait for a body it will refuse anyway.
    REQUIRE_FALSE(c.write(post_head("/small", 101)));
    check_413(c.read_response());
    CHECK(c.wait_closed(2s));
  }
  SECTION("default limit") {
    HttpTestClient c(ts.port());
    REQUIRE_FALSE(c.write(post_head("/default", 64 * 1024 + 1)));
    check_413(c.read_response());
  }
  SECTION("raised limit") {
    HttpTestClient c(ts.port());
    REQUIRE_FALSE(c.write(post_head("/big", 256 * 1024 + 1)));
    check_413(c.read_response());
  }
  SECTION("with Expect: 100-continue no 100 is sent") {
    HttpTestClient c(ts.port());
    REQUIRE_FALSE(
        c.write("POST /small HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                "Content-Length: 5000\r\n\r\n"));
    check_413(c.read_response());
  }
}

TEST_CASE("body limit: the 413 and 400 answers to HEAD carry headers only", "[net][limits]") {
  // A body after the head of an answer to HEAD would be read as the next response.
  Router r = limit_router();
  r.add(verb::head, "/small", body_size, route_options("small_head", 100));
  TestServer ts(std::move(r));
  auto answer_to = [&](const std::string& request) {
    HttpTestClient c(ts.port());
    REQUIRE_FALSE(c.write(request));
    if (request.find("Content-Length: 5\r\n") != std::string::npos) c.socket().shutdown(tcp::socket::shutdown_send);
    std::string received;
    REQUIRE(c.wait_closed(5s, &received));
    return received;
  };
  SECTION("Content-Length over the limit") {
    const std::string got = answer_to("HEAD /small HTTP/1.1\r\nHost: x\r\nContent-Length: 999999\r\n\r\n");
    INFO(got);
    CHECK(got.rfind("HTTP/1.1 413", 0) == 0);
    CHECK(got.find("Content-Length: ") != std::string::npos);  // the length the body would have
    CHECK(got.size() == got.find("\r\n\r\n") + 4);
  }
  SECTION("a body cut short") {
    const std::string got = answer_to("HEAD /small HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab");
    INFO(got);
    CHECK(got.rfind("HTTP/1.1 400", 0) == 0);
    CHECK(got.size() == got.find("\r\n\r\n") + 4);
  }
}

TEST_CASE("body limit: a chunked body that grows past the limit is 413", "[net][limits]") {
  TestServer ts(limit_router());
  HttpTestClient c(ts.port());
  // 60 bytes, then a chunk header announcing 60 more: 120 > 100.
  std::string req = "POST /small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  req += "3c\r\n" + std::string(60, 'a') + "\r\n3c\r\n";
  REQUIRE_FALSE(c.write(req));
  check_413(c.read_response());
}

TEST_CASE("body limit: a chunked body within the limit is accepted", "[net][limits]") {
  TestServer ts(limit_router());
  HttpTestClient c(ts.port());
  std::string req = "POST /small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  req += "32\r\n" + std::string(50, 'a') + "\r\n32\r\n" + std::string(50, 'b') + "\r\n0\r\n\r\n";
  REQUIRE_FALSE(c.write(req));
  auto res = c.read_response();
  REQUIRE(res);
  CHECK(res->result() == http::status::ok);
  CHECK(res->body() == "100");
}

TEST_CASE("Expect: 100-continue gets 100 before the body is sent", "[net][limits]") {
  TestServer ts(limit_router());
  HttpTestClient c(ts.port());
  REQUIRE_FALSE(
      c.write("POST /small HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
              "Content-Length: 10\r\n\r\n"));
  auto interim = c.read_response();
  REQUIRE(interim);
  CHECK(interim->result() == http::status::continue_);
  REQUIRE_FALSE(c.write("0123456789"));
  auto res = c.read_response();
  REQUIRE(res);
  CHECK(res->result() == http::status::ok);
  CHECK(res->body() == "10");
}

TEST_CASE("request head larger than max_header_bytes is 431", "[net][limits]") {
  TestServer ts(limit_router());
  HttpTestClient c(ts.port());
  std::string req =
      "GET /default HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(8 * 1024, 'h') + "\r\n\r\n";
  REQUIRE_FALSE(c.write(req));
  auto res = c.read_response();
  REQUIRE(res);
  CHECK(res->result() == http::status::request_header_fields_too_large);
  CHECK(error_type_and_code(res->body()).second == "headers_too_large");
  CHECK(c.wait_closed(2s));
}

TEST_CASE("malformed requests are 400 in the OpenAI error shape", "[net][limits]") {
  TestServer ts(limit_router());
  auto bad = GENERATE(as<std::string>{}, "GARBAGE\r\n\r\n", "GET /x FTP/1.1\r\n\r\n",
                      "GET /x HTTP/1.1\r\nBad Header Name: y\r\n\r\n",
                      "POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
                      "POST /small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "zz\r\n");
  INFO("request: " << bad);
  HttpTestClient c(ts.port());
  REQUIRE_FALSE(c.write(bad));
  auto res = c.read_response();
  REQUIRE(res);
  CHECK(res->result() == http::status::bad_request);
  auto [type, code] = error_type_and_code(res->body());
  CHECK(type == "invalid_request_error");
  CHECK(code == "bad_request");
  CHECK(c.wait_closed(2s));
}

TEST_CASE("a client that stalls inside the request head is dropped at header_timeout",
          "[net][limits][timeouts]") {
  TestServer ts(limit_router());  // header_timeout 300 ms
  HttpTestClient c(ts.port());
  auto start = std::chrono::steady_clock::now();
  REQUIRE_FALSE(c.write("GET /default HTTP/1.1\r\nHost: x\r\nX-Partial: "));
  std::string received;
  CHECK(c.wait_closed(3s, &received));
  auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(elapsed >= 250ms);
  CHECK(elapsed < 2500ms);
  // Either nothing or a 408 arrives before the close.
  CHECK((received.empty() || received.starts_with("HTTP/1.1 408")));
}

TEST_CASE("a client that stalls inside the body is dropped at body_timeout",
          "[net][limits][timeouts]") {
  TestServer ts(limit_router());  // body_timeout 300 ms
  HttpTestClient c(ts.port());
  auto start = std::chrono::steady_clock::now();
  REQUIRE_FALSE(c.write(post_head("/small", 50) + "only ten.."));
  std::string received;
  CHECK(c.wait_closed(3s, &received));
  auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(elapsed >= 250ms);
  CHECK(elapsed < 2500ms);
  CHECK((received.empty() || received.starts_with("HTTP/1.1 408")));
}

TEST_CASE("the request head timeout does not cover the keep-alive wait", "[net][timeouts]") {
  // Idle between requests for longer than header_timeout: the keep-alive timeout applies.
  TestServer ts(limit_router());
  HttpTestClient c(ts.port());
  c.roundtrip(verb::post, "/small", "abc");
  std::this_thread::sleep_for(500ms);  // > header_timeout, < keepalive_timeout
  CHECK(c.roundtrip(verb::post, "/small", "abcd").body() == "4");
}
