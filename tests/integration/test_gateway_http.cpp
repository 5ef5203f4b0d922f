// The HTTP edge of the running server: error shape, metrics exposition, trace ids, API keys,
// rate limits and the in-flight bound, all through real sockets.

#include <catch2/catch.hpp>
#include <chrono>
#include <regex>

#include "support/talkserve.hpp"

using namespace talkserve::itest;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// [[maybe_unused]] here and below: only tests built with TALKSERVE_ITEST_MODELS use it.
[[maybe_unused]] const char* kAliceKey = "sk-alice-0123456789";
[[maybe_unused]] const char* kBobKey = "sk-bob-9876543210";
// sha256("sk-bob-9876543210")
[[maybe_unused]] const char* kBobSha256 = "2f7c313bdf136c510fa59faafd953b674252b29d84a5bcdf373b1e8f0c0aa7dc";

Headers bearer(const std::string& key) { return {{"Authorization", "Bearer " + key}}; }

// The OpenAI error shape: {"error":{"message": string, "type": string, "code": string|null}}.
void check_error_shape(const HttpResponse& res, const std::string& type = {},
                       const std::string& code = {}) {
  INFO("status " << res.status << " body: " << res.body);
  CHECK_THAT(res.header("Content-Type").value_or(""), Catch::Contains("application/json"));
  json j;
  REQUIRE_NOTHROW(j = res.json());
  REQUIRE(j.is_object());
  REQUIRE(j.contains("error"));
  const auto& e = j["error"];
  REQUIRE(e.is_object());
  CHECK(e["message"].is_string());
  CHECK_FALSE(e["message"].get<std::string>().empty());
  CHECK(e["type"].is_string());
  CHECK((e["code"].is_string() || e["code"].is_null()));
  if (!type.empty()) CHECK(e["type"] == type);
  if (!code.empty()) CHECK(e["code"] == code);
}

json small_completion() {
  return json{{"model", "stories260K"}, {"prompt", "Once"}, {"max_tokens", 4}, {"temperature", 0}};
}

}  // namespace

TEST_CASE("an unknown route is 404 in the OpenAI error shape", "[gateway][http]") {
  Talkserve server;
  auto res = server.client().get("/no/such/route");
  CHECK(res.status == 404);
  check_error_shape(res, "invalid_request_error", "not_found");
}

TEST_CASE("a known route with the wrong method is 405 with Allow", "[gateway][http]") {
  Talkserve server;
  auto res = server.client().request("POST", "/healthz", "{}");
  CHECK(res.status == 405);
  CHECK(res.header("Allow").value_or("") == "GET");
  check_error_shape(res, "invalid_request_error");
}

#if TALKSERVE_ITEST_MODELS  // needs the LLM
TEST_CASE("a body over http.max_body_bytes is 413 before it is read", "[gateway][http]") {
  Talkserve server({"--set", "http.max_body_bytes=1024"});
  auto res = server.client().request("POST", "/v1/completions", std::string(4096, 'x'));
  CHECK(res.status == 413);
  check_error_shape(res, "invalid_request_error");
}
#endif

TEST_CASE("/metrics is Prometheus text with per-route request counters", "[gateway][metrics]") {
  Talkserve server;
  auto client = server.client();
  REQUIRE(client.get("/healthz").status == 200);
  REQUIRE(client.get("/healthz").status == 200);
  REQUIRE(client.get("/nope").status == 404);

  // A request is counted once its response has been written, on the I/O thread of its own
  // connection; this client opens a connection per request, so the count of the previous
  // request can land a moment after its answer: read /metrics until it is there (bounded).
  HttpResponse res;
  MetricsText m;
  poll_until(
      [&] {
        res = client.get("/metrics");
        if (res.status != 200) return true;
        m = parse_prometheus(res.body);
        return m.value("talkserve_http_requests_total", {{"code", "404"}}).has_value() &&
               m.value("talkserve_http_request_duration_seconds_count", {{"route", "/healthz"}}) == 2;
      },
      2s);
  REQUIRE(res.status == 200);
  CHECK_THAT(res.header("Content-Type").value_or(""), Catch::StartsWith("text/plain"));
  CHECK_THAT(res.header("Content-Type").value_or(""), Catch::Contains("version=0.0.4"));
  REQUIRE_NOTHROW(m = parse_prometheus(res.body));
  CHECK(m.families["talkserve_http_requests_total"].type == "counter");
  CHECK(m.families["talkserve_http_request_duration_seconds"].type == "histogram");
  CHECK(m.value("talkserve_http_requests_total", {{"route", "/healthz"}, {"code", "200"}}) == 2);
  CHECK(m.value("talkserve_http_requests_total", {{"code", "404"}}) == 1);
  CHECK(m.value("talkserve_http_request_duration_seconds_count", {{"route", "/healthz"}}) == 2);
  // Every sample belongs to a family announced with # TYPE.
  for (const auto& s : m.samples) {
    std::string family = std::regex_replace(s.name, std::regex("_(bucket|sum|count)$"), "");
    INFO(s.name);
    CHECK((m.families.count(s.name) == 1 || m.families.count(family) == 1));
  }
  // The gateway's series are there from the start.
  CHECK(m.value("talkserve_max_in_flight_requests").has_value());
  CHECK(m.value("talkserve_rate_limited_total", {{"tier", "standard"}}) == 0);
}

#if TALKSERVE_ITEST_MODELS  // needs the LLM
TEST_CASE("X-Request-Id is echoed back and the traceparent trace id wins", "[gateway][trace]") {
  Talkserve server;
  auto client = server.client();
  const std::regex generated("[0-9a-f]{32}");
  {
    INFO("a caller's X-Request-Id comes back unchanged");
    auto res = client.get("/healthz", {{"X-Request-Id", "req-abc-123"}});
    CHECK(res.header("X-Request-Id") == "req-abc-123");
  }
  {
    INFO("the W3C traceparent trace id is used, ahead of X-Request-Id");
    auto res = client.get("/healthz",
                          {{"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
                           {"X-Request-Id", "ignored-when-traceparent-parses"}});
    CHECK(res.header("X-Request-Id") == "4bf92f3577b34da6a3ce929d0e0e4736");
  }
  {
    INFO("an invalid traceparent (all-zero trace id) falls back to X-Request-Id");
    auto res = client.get("/healthz",
                          {{"traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"},
                           {"X-Request-Id", "fallback-id"}});
    CHECK(res.header("X-Request-Id") == "fallback-id");
  }
  {
    INFO("without either, a fresh 32-hex id is generated per request");
    auto a = client.get("/healthz").header("X-Request-Id").value_or("");
    auto b = client.get("/healthz").header("X-Request-Id").value_or("");
    CHECK(std::regex_match(a, generated));
    CHECK(std::regex_match(b, generated));
    CHECK(a != b);
  }
  {
    INFO("an X-Request-Id with a space is not trusted");
    auto res = client.get("/healthz", {{"X-Request-Id", "evil id"}});
    CHECK(std::regex_match(res.header("X-Request-Id").value_or(""), generated));
  }
  {
    INFO("error responses carry the id too");
    auto res = client.get("/nope", {{"X-Request-Id", "err-id-1"}});
    CHECK(res.status == 404);
    CHECK(res.header("X-Request-Id") == "err-id-1");
  }
  {
    INFO("so do /v1 responses");
    auto res = client.get("/v1/models", {{"X-Request-Id", "v1-id-1"}});
    CHECK(res.header("X-Request-Id") == "v1-id-1");
  }
}
#endif

namespace {

// Checks the API-key behaviour of a server whose valid keys are `good` (and not "sk-wrong").
[[maybe_unused]] void check_auth(Talkserve& server, const std::vector<std::string>& good) {
  auto client = server.client();
  int rejected = 0;
  {
    INFO("no Authorization header: 401");
    auto res = client.get("/v1/models");
    CHECK(res.status == 401);
    rejected += res.status == 401;
    CHECK(res.header("WWW-Authenticate").value_or("") == "Bearer");
    check_error_shape(res, "authentication_error", "invalid_api_key");
  }
  {
    INFO("a wrong key: 401, and the message does not echo it");
    auto res = client.get("/v1/models", bearer("sk-wrong"));
    CHECK(res.status == 401);
    rejected += res.status == 401;
    check_error_shape(res, "authentication_error", "invalid_api_key");
    CHECK_THAT(res.body, !Catch::Contains("sk-wrong"));
  }
  {
    INFO("a malformed Authorization header: 401");
    auto res = client.get("/v1/models", {{"Authorization", "Basic " + good.front()}});
    CHECK(res.status == 401);
    rejected += res.status == 401;
    check_error_shape(res, "authentication_error", "invalid_api_key");
  }
  {
    INFO("a POST without a key is rejected before the handler runs");
    auto res = client.post_json("/v1/completions", small_completion());
    CHECK(res.status == 401);
    rejected += res.status == 401;
  }
  for (const auto& k : good) {
    INFO("a configured key: 200 (" << k << ")");
    CHECK(client.get("/v1/models", bearer(k)).status == 200);
    CHECK(client.post_json("/v1/completions", small_completion(), bearer(k)).status == 200);
  }
  {
    INFO("the scheme name is case-insensitive");
    CHECK(client.get("/v1/models", {{"Authorization", "bearer " + good.front()}}).status == 200);
  }
  {
    INFO("probes and metrics need no key");
    CHECK(client.get("/healthz").status == 200);
    CHECK(client.get("/readyz").status == 200);
    CHECK(client.get("/metrics").status == 200);
  }
  {
    INFO("rejections are counted");
    auto m = server.metrics();
    CHECK(m.value("talkserve_unauthorized_total") == rejected);
    CHECK(m.value("talkserve_admission_rejected_total", {{"reason", "unauthorized"}}) == rejected);
    CHECK(m.value("talkserve_http_requests_total", {{"route", "/v1/models"}, {"code", "401"}}) ==
          rejected - 1);
  }
}

}  // namespace

#if TALKSERVE_ITEST_MODELS  // needs the LLM
TEST_CASE("API keys from the config file guard /v1 routes", "[gateway][auth]") {
  TempDir dir;
  auto config = dir.write("talkserve.toml", std::string(R"(
[[gateway.keys]]
name = "alice"
key = ")") + kAliceKey + R"("
tier = "vip"
)");
  Talkserve server({"--config", config});
  check_auth(server, {kAliceKey});
}
#endif

#if TALKSERVE_ITEST_MODELS  // needs the LLM
TEST_CASE("API keys from a keys file (plain and sha256) guard /v1 routes", "[gateway][auth]") {
  TempDir dir;
  auto keys = dir.write("api-keys", std::string("# name tier secret [rate burst]\n") +
                                        "alice vip key:" + kAliceKey + "\n" +
                                        "bob standard sha256:" + kBobSha256 + " 10 20\n");
  Talkserve server({"--set", "gateway.keys_file=\"" + keys + "\""});
  check_auth(server, {kAliceKey, kBobKey});
}
#endif

#if TALKSERVE_ITEST_MODELS  // needs the LLM
TEST_CASE("API keys given with --set guard /v1 routes", "[gateway][auth]") {
  Talkserve server({"--set", std::string("gateway.keys=[{name=\"alice\", key=\"") + kAliceKey +
                                 "\"}, {name=\"bob\", key=\"" + kBobKey + "\", tier=\"batch\"}]"});
  check_auth(server, {kAliceKey, kBobKey});
}
#endif

#if TALKSERVE_ITEST_MODELS  // needs the LLM
TEST_CASE("a key over its token bucket gets 429 with Retry-After", "[gateway][ratelimit]") {
  // One request, then a token every 1000 s.
  Talkserve server({"--set", std::string("gateway.keys=[{name=\"tiny\", key=\"") + kAliceKey +
                                 "\", tier=\"vip\", rate_per_s=0.001, burst=1}, "
                                 "{name=\"other\", key=\"" + kBobKey + "\"}]"});
  auto client = server.client();
  auto first = client.get("/v1/models", bearer(kAliceKey));
  CHECK(first.status == 200);
  auto second = client.get("/v1/models", bearer(kAliceKey));
  CHECK(second.status == 429);
  check_error_shape(second, "rate_limit_error", "rate_limit_exceeded");
  auto retry = second.header("Retry-After");
  REQUIRE(retry.has_value());
  REQUIRE(std::regex_match(*retry, std::regex("[0-9]+")));
  CHECK(std::stoi(*retry) >= 900);  // ~1000 s until the next token
  CHECK(std::stoi(*retry) <= 1000);

  // Another key is not affected.
  CHECK(client.get("/v1/models", bearer(kBobKey)).status == 200);

  auto m = server.metrics();
  CHECK(m.value("talkserve_rate_limited_total", {{"tier", "vip"}}) == 1);
  CHECK(m.value("talkserve_rate_limited_total", {{"tier", "standard"}}) == 0);
  CHECK(m.value("talkserve_admitted_total", {{"tier", "vip"}}) == 1);
  CHECK(m.value("talkserve_admission_rejected_total", {{"reason", "rate_limited"}}) == 1);

  // The limit holds for POSTs too, and /metrics stays open to the limited client.
  CHECK(client.post_json("/v1/completions", small_completion(), bearer(kAliceKey)).status == 429);
  CHECK(client.get("/metrics").status == 200);
}
#endif

#if TALKSERVE_ITEST_MODELS  // needs the LLM
TEST_CASE("gateway.max_in_flight full: another /v1 request gets 503 with Retry-After",
          "[gateway][admission][llm]") {
  // 400 tokens take the engine a good fraction of a second at least; every check up to
  // read_all() below takes milliseconds, so the first request is still in flight for them.
  Talkserve server({"--set", "gateway.max_in_flight=1"});
  auto client = server.client(20s);
  json body{{"model", "stories260K"}, {"prompt", "Once upon a time"}, {"max_tokens", 400},
            {"temperature", 0},       {"ignore_eos", true},           {"stream", true}};
  SseStream stream(client, "/v1/completions", body);
  INFO(server.diagnostics());
  REQUIRE(stream.status() == 200);
  REQUIRE(stream.next_data().has_value());
  REQUIRE(server.metrics().value("talkserve_in_flight_requests") == 1);

  auto res = client.get("/v1/models");
  CHECK(res.status == 503);
  check_error_shape(res, "server_overloaded", "server_overloaded");
  CHECK(res.header("Retry-After").value_or("") == "1");
  // Probes are never turned away.
  CHECK(client.get("/healthz").status == 200);
  CHECK(server.metrics().value("talkserve_admission_rejected_total", {{"reason", "overloaded"}}) ==
        1);

  // Once the stream is done the slot is free again.
  auto rest = stream.read_all();
  REQUIRE_FALSE(rest.empty());
  CHECK(rest.back() == "[DONE]");
  CHECK(poll_until([&] { return client.get("/v1/models").status == 200; }, 5s));
}
#endif
