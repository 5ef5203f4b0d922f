// The pure rules of the remote LLM backend: upstream URLs, SSE framing, backoff, Retry-After,
// status mapping, error messages and the prompt-size estimate.

#include <catch2/catch.hpp>

#include <stdexcept>

#include "talkserve/llm/remote_protocol.hpp"

using namespace talkserve::llm;
using namespace talkserve::llm::remote;
using namespace std::chrono_literals;

TEST_CASE("remote url: scheme, host, port, base path", "[llm][remote]") {
  auto u = parse_upstream_url("http://127.0.0.1:8000");
  CHECK_FALSE(u.tls);
  CHECK(u.host == "127.0.0.1");
  CHECK(u.port == 8000);
  CHECK(u.base_path.empty());
  CHECK(u.target("/v1/chat/completions") == "/v1/chat/completions");
  CHECK(u.host_header() == "127.0.0.1:8000");
  CHECK(u.origin() == "http://127.0.0.1:8000");

  u = parse_upstream_url("HTTPS://llm.example/proxy/");
  CHECK(u.tls);
  CHECK(u.port == 443);
  CHECK(u.base_path == "/proxy");
  CHECK(u.target("/v1/models") == "/proxy/v1/models");
  CHECK(u.host_header() == "llm.example");

  u = parse_upstream_url("http://[::1]:9000");
  CHECK(u.host == "::1");
  CHECK(u.port == 9000);
  CHECK(u.host_header() == "[::1]:9000");
  CHECK(u.origin() == "http://[::1]:9000");
  CHECK(parse_upstream_url("http://h").port == 80);
}

TEST_CASE("remote url: bad urls say what is wrong", "[llm][remote]") {
  auto why = [](const char* url) {
    try {
      parse_upstream_url(url);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  CHECK_THAT(why("ftp://h"), Catch::Contains("http:// or https://"));
  CHECK_THAT(why("127.0.0.1:8000"), Catch::Contains("http:// or https://"));
  CHECK_THAT(why("http://:80"), Catch::Contains("no host"));
  CHECK_THAT(why("http://h:0"), Catch::Contains("bad port"));
  CHECK_THAT(why("http://h:70000"), Catch::Contains("bad port"));
  CHECK_THAT(why("http://h:8x"), Catch::Contains("bad port"));
  CHECK_THAT(why("http://h:"), Catch::Contains("empty port"));
  CHECK_THAT(why("http://user:pw@h"), Catch::Contains("credentials"));
  CHECK_THAT(why("http://h/?a=b"), Catch::Contains("query"));
  CHECK_THAT(why("http://h:8000/v1"), Catch::Contains("without /v1"));
  CHECK_THAT(why("http://h:8000/v1/"), Catch::Contains("without /v1"));
  CHECK_THAT(why("http://[::1"), Catch::Contains("IPv6"));
}

TEST_CASE("sse: events split anywhere, CRLF or LF, comments and other fields ignored",
          "[llm][remote]") {
  const std::string stream =
      ": ping\r\n\r\n"
      "event: message\r\ndata: {\"a\":1}\r\n\r\n"
      "id: 7\ndata: line one\ndata: line two\n\n"
      "data:no-space\n\n"
      "retry: 100\n\n"
      "data: [DONE]\n\n";
  const std::vector<std::string> want{"{\"a\":1}", "line one\nline two", "no-space", "[DONE]"};
  // Every split point of the stream gives the same events.
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    SseParser p;
    auto got = p.feed(std::string_view(stream).substr(0, cut));
    auto rest = p.feed(std::string_view(stream).substr(cut));
    got.insert(got.end(), rest.begin(), rest.end());
    INFO("cut at " << cut);
    CHECK(got == want);
  }
  // One byte at a time.
  SseParser p;
  std::vector<std::string> got;
  for (char c : stream) {
    for (auto& e : p.feed(std::string_view(&c, 1))) got.push_back(e);
  }
  CHECK(got == want);
}

TEST_CASE("sse: an event is only complete at its blank line; a huge event is refused",
          "[llm][remote]") {
  SseParser p;
  CHECK(p.feed("data: partial\n").empty());
  CHECK(p.feed("\n") == std::vector<std::string>{"partial"});
  CHECK(p.feed("data: \n\n") == std::vector<std::string>{""});

  SseParser small(64);
  CHECK_THROWS_AS(small.feed("data: " + std::string(100, 'x')), std::length_error);
}

TEST_CASE("backoff: doubles per retry, capped, jittered between d/2 and d", "[llm][remote]") {
  CHECK(backoff_delay(1, 200ms, 5000ms, 0.0) == 100ms);
  CHECK(backoff_delay(1, 200ms, 5000ms, 1.0) == 200ms);
  CHECK(backoff_delay(2, 200ms, 5000ms, 1.0) == 400ms);
  CHECK(backoff_delay(3, 200ms, 5000ms, 0.5) == 600ms);  // d = 800: 400 + 200
  CHECK(backoff_delay(10, 200ms, 5000ms, 1.0) == 5000ms);
  CHECK(backoff_delay(60, 200ms, 5000ms, 0.0) == 2500ms);
  CHECK(backoff_delay(1, 0ms, 5000ms, 1.0) == 0ms);
  CHECK(backoff_delay(0, 200ms, 5000ms, 1.0) == 0ms);
}

TEST_CASE("retry-after: seconds or an HTTP date", "[llm][remote]") {
  const auto now = std::chrono::system_clock::from_time_t(1445412480);  // 2015-10-21 07:28:00 UTC
  CHECK(parse_retry_after("3", now) == std::optional(3000ms));
  CHECK(parse_retry_after(" 0 ", now) == std::optional(0ms));
  CHECK(parse_retry_after("Wed, 21 Oct 2015 07:28:05 GMT", now) == std::optional(5000ms));
  CHECK(parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now) == std::optional(0ms));
  CHECK_FALSE(parse_retry_after("soon", now));
  CHECK_FALSE(parse_retry_after("", now));
  CHECK_FALSE(parse_retry_after("-1", now));
}

TEST_CASE("status: what our client gets for an upstream status", "[llm][remote]") {
  for (int s : {429, 502, 503, 504}) CHECK(retryable_status(s));
  for (int s : {400, 401, 404, 500}) CHECK_FALSE(retryable_status(s));
  CHECK(client_status_for(400) == 400);  // e.g. the conversation does not fit the context
  CHECK(client_status_for(413) == 413);
  CHECK(client_status_for(401) == 502);  // our upstream key is wrong, not the client's
  CHECK(client_status_for(404) == 502);
  CHECK(client_status_for(429) == 503);
  CHECK(client_status_for(503) == 503);
  CHECK(client_status_for(504) == 504);
  CHECK(client_status_for(500) == 502);
}

TEST_CASE("upstream error messages: OpenAI shape, variants, or the trimmed body",
          "[llm][remote]") {
  CHECK(upstream_error_message(R"({"error":{"message":"Invalid API key","type":"x"}})") ==
        "Invalid API key");
  CHECK(upstream_error_message(R"({"error":"model not found"})") == "model not found");
  CHECK(upstream_error_message(R"({"detail":"Not Found"})") == "Not Found");
  CHECK(upstream_error_message("  Bad Gateway\n") == "Bad Gateway");
  CHECK(upstream_error_message(std::string(400, 'x')).size() == 303);
}

TEST_CASE("prompt estimate: bytes / 3 plus per-message overhead, growing with content",
          "[llm][remote]") {
  const std::vector<ChatMessage> one{{"user", "123456"}};
  CHECK(estimate_prompt_tokens(one) == 2 + 4 + 3);
  const std::vector<ChatMessage> two{{"system", "x"}, {"user", std::string(300, 'y')}};
  CHECK(estimate_prompt_tokens(two) == 101 + 8 + 3);
  CHECK(estimate_prompt_tokens({}) == 3);
}
