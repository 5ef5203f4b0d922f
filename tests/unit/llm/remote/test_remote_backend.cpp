// RemoteChatBackend against a scripted upstream on loopback: the request it sends, the
// deltas it relays, which failures it retries (and how often), what a client is told, and
// that cancel() drops the upstream connection.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "talkserve/llm/remote_chat_backend.hpp"
#include "talkserve/obs/metrics.hpp"
#include "scripted_upstream.hpp"

using namespace talkserve::llm;
using talkserve::test::ScriptedUpstream;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// What a chat() delivered; waits for on_done.
struct Reply {
  std::mutex mutex;
  std::condition_variable cv;
  std::string text;
  std::vector<std::string> deltas;
  std::optional<ChatOutcome> outcome;

  std::function<void(std::string)> on_text() {
    return [this](std::string d) {
      std::lock_guard lock(mutex);
      text += d;
      deltas.push_back(std::move(d));
      cv.notify_all();
    };
  }
  std::function<void(ChatOutcome)> on_done() {
    return [this](ChatOutcome o) {
      std::lock_guard lock(mutex);
      outcome = std::move(o);
      cv.notify_all();
    };
  }
  ChatOutcome wait(std::chrono::milliseconds timeout = 20s) {
    std::unique_lock lock(mutex);
    REQUIRE(cv.wait_for(lock, timeout, [&] { return outcome.has_value(); }));
    return *outcome;
  }
  bool wait_text(std::chrono::milliseconds timeout = 20s) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, timeout, [&] { return !text.empty(); });
  }
};

RemoteChatConfig config_for(const std::string& url) {
  RemoteChatConfig c;
  c.url = url;
  c.model = "m1";
  c.api_key = "sk-test";
  c.backoff = 1ms;
  c.max_backoff = 50ms;
  c.connect_timeout = 2s;
  c.timeout = 5s;
  c.idle_timeout = 5s;
  return c;
}

const std::vector<ChatMessage> kHello{{"system", "Be brief."}, {"user", "Hello"}};

double counter(talkserve::obs::MetricsRegistry& m, const std::string& outcome) {
  return m.counter("talkserve_llm_remote_requests_total", "", {{"outcome", outcome}}).value();
}
double retries(talkserve::obs::MetricsRegistry& m) {
  return m.counter("talkserve_llm_remote_retries_total", "").value();
}

// A port nothing listens on (bound, then closed).
std::uint16_t closed_port() {
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::acceptor a(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

}  // namespace

TEST_CASE("remote backend: sends an OpenAI streaming chat request and relays its deltas",
          "[llm][remote]") {
  ScriptedUpstream up([](const auto&, int, const auto& write) {
    write(ScriptedUpstream::sse_head());
    write(": keep-alive\n\n");
    write(ScriptedUpstream::delta("Once"));
    write(ScriptedUpstream::delta(" upon \\u00e9"));
    write(ScriptedUpstream::finish("length"));
  });
  talkserve::obs::MetricsRegistry metrics;
  RemoteChatBackend backend(config_for(up.url()), &metrics);
  CHECK(backend.chat_ready());
  CHECK(backend.model_name() == "m1");
  Reply r;
  ChatOptions o;
  o.max_tokens = 7;
  o.seed = 0;
  backend.chat(kHello, o, r.on_text(), r.on_done());
  auto out = r.wait();
  CHECK(out.reason == FinishReason::length);
  CHECK(r.text == "Once upon \xC3\xA9");
  CHECK(r.deltas.size() == 2);
  CHECK(out.usage.prompt_tokens == 11);
  CHECK(out.usage.completion_tokens == 3);

  const auto received = up.received();
  REQUIRE(received.size() == 1);
  const auto& req = received[0];
  CHECK(req.method_string() == "POST");
  CHECK(req.target() == "/v1/chat/completions");
  CHECK(req["Authorization"] == "Bearer sk-test");
  CHECK(req["Host"] == "127.0.0.1:" + std::to_string(up.port()));
  const json body = json::parse(req.body());
  CHECK(body["model"] == "m1");
  CHECK(body["stream"] == true);
  CHECK(body["stream_options"]["include_usage"] == true);
  CHECK(body["max_tokens"] == 7);
  CHECK(body["temperature"] == 0.0);
  CHECK(body["seed"] == 0);
  CHECK(body["messages"] == json::parse(R"([{"role":"system","content":"Be brief."},
                                            {"role":"user","content":"Hello"}])"));
  CHECK(counter(metrics, "ok") == 1);
  CHECK(retries(metrics) == 0);
}

TEST_CASE("remote backend: 503 and 429 are retried (Retry-After honoured) until a reply comes",
          "[llm][remote]") {
  ScriptedUpstream up([](const auto&, int index, const auto& write) {
    if (index == 0) {
      write(ScriptedUpstream::response(503, R"({"error":{"message":"warming up"}})"));
    } else if (index == 1) {
      write(ScriptedUpstream::response(429, R"({"error":{"message":"slow down"}})",
                                       "Retry-After: 0\r\n"));
    } else {
      write(ScriptedUpstream::sse_head() + ScriptedUpstream::delta("ok") +
            ScriptedUpstream::finish("stop"));
    }
  });
  talkserve::obs::MetricsRegistry metrics;
  RemoteChatBackend backend(config_for(up.url()), &metrics);
  Reply r;
  backend.chat(kHello, {}, r.on_text(), r.on_done());
  auto out = r.wait();
  CHECK(out.reason == FinishReason::stop);
  CHECK(r.text == "ok");
  CHECK(up.requests() == 3);
  CHECK(retries(metrics) == 2);
  CHECK(counter(metrics, "ok") == 1);
}

TEST_CASE("remote backend: a Retry-After beyond max_backoff is not waited for", "[llm][remote]") {
  ScriptedUpstream up([](const auto&, int, const auto& write) {
    write(ScriptedUpstream::response(503, R"({"error":{"message":"maintenance"}})",
                                     "Retry-After: 3600\r\n"));
  });
  RemoteChatBackend backend(config_for(up.url()), nullptr);
  Reply r;
  backend.chat(kHello, {}, r.on_text(), r.on_done());
  auto out = r.wait();
  CHECK(out.reason == FinishReason::error);
  CHECK(out.status == 503);
  CHECK_THAT(out.message, Catch::Contains("maintenance") && Catch::Contains("Retry-After"));
  CHECK(up.requests() == 1);
}

TEST_CASE("remote backend: upstream 4xx are not retried; 400 passes, 401 is our 502",
          "[llm][remote]") {
  const int status = GENERATE(400, 401);
  ScriptedUpstream up([status](const auto&, int, const auto& write) {
    write(ScriptedUpstream::response(
        status, status == 400 ? R"({"error":{"message":"This model's maximum context length is 512"}})"
                              : R"({"error":{"message":"Invalid API key"}})"));
  });
  talkserve::obs::MetricsRegistry metrics;
  RemoteChatBackend backend(config_for(up.url()), &metrics);
  Reply r;
  backend.chat(kHello, {}, r.on_text(), r.on_done());
  auto out = r.wait();
  CHECK(out.reason == FinishReason::error);
  CHECK(up.requests() == 1);
  CHECK(retries(metrics) == 0);
  CHECK(counter(metrics, "upstream_error") == 1);
  CHECK_THAT(out.message, Catch::Contains(up.url()) &&
                              Catch::Contains("answered " + std::to_string(status)));
  if (status == 400) {
    CHECK(out.status == 400);
    CHECK_THAT(out.message, Catch::Contains("maximum context length"));
  } else {
    CHECK(out.status == 502);
    CHECK_THAT(out.message, Catch::Contains("Invalid API key"));
  }
}

TEST_CASE("remote backend: an unreachable upstream fails after max_retries + 1 attempts",
          "[llm][remote]") {
  auto cfg = config_for("http://127.0.0.1:" + std::to_string(closed_port()));
  cfg.max_retries = 3;
  talkserve::obs::MetricsRegistry metrics;
  RemoteChatBackend backend(cfg, &metrics);
  Reply r;
  backend.chat(kHello, {}, r.on_text(), r.on_done());
  auto out = r.wait();
  CHECK(out.reason == FinishReason::error);
  CHECK(out.status == 502);
  CHECK_THAT(out.message, Catch::Contains(cfg.url) && Catch::Contains("connecting") &&
                              Catch::Contains("after 4 attempts"));
  CHECK(retries(metrics) == 3);
  CHECK(counter(metrics, "unreachable") == 1);
  CHECK(r.text.empty());
}

TEST_CASE("remote backend: a stream that breaks after text is not retried (no repeated text)",
          "[llm][remote]") {
  ScriptedUpstream up([](const auto&, int, const auto& write) {
    write(ScriptedUpstream::sse_head() + ScriptedUpstream::delta("half"));
  });
  RemoteChatBackend backend(config_for(up.url()), nullptr);
  Reply r;
  backend.chat(kHello, {}, r.on_text(), r.on_done());
  auto out = r.wait();
  CHECK(out.reason == FinishReason::error);
  CHECK(out.status == 502);
  CHECK_THAT(out.message, Catch::Contains("before [DONE]"));
  CHECK(r.text == "half");
  CHECK(up.requests() == 1);
}

TEST_CASE("remote backend: an error event mid-stream ends the reply with its message",
          "[llm][remote]") {
  ScriptedUpstream up([](const auto&, int, const auto& write) {
    write(ScriptedUpstream::sse_head() + ScriptedUpstream::delta("a") +
          "data: {\"error\":{\"message\":\"engine died\"}}\n\n");
  });
  RemoteChatBackend backend(config_for(up.url()), nullptr);
  Reply r;
  backend.chat(kHello, {}, r.on_text(), r.on_done());
  auto out = r.wait();
  CHECK(out.reason == FinishReason::error);
  CHECK_THAT(out.message, Catch::Contains("engine died"));
  CHECK(up.requests() == 1);
}

TEST_CASE("remote backend: first-byte and idle timeouts end the reply with 504", "[llm][remote]") {
  const bool idle = GENERATE(false, true);
  ScriptedUpstream up([idle](const auto&, int, const auto& write) {
    if (idle) write(ScriptedUpstream::sse_head() + ScriptedUpstream::delta("x"));
    std::this_thread::sleep_for(1500ms);  // silent; the client gives up first
  });
  auto cfg = config_for(up.url());
  cfg.max_retries = 0;
  cfg.timeout = 300ms;
  cfg.idle_timeout = 300ms;
  talkserve::obs::MetricsRegistry metrics;
  RemoteChatBackend backend(cfg, &metrics);
  Reply r;
  backend.chat(kHello, {}, r.on_text(), r.on_done());
  auto out = r.wait();
  CHECK(out.reason == FinishReason::error);
  CHECK(out.status == 504);
  CHECK_THAT(out.message, Catch::Contains(idle ? "idle_timeout_ms" : "(llm.remote.timeout_ms)"));
  CHECK(counter(metrics, "timeout") == 1);
}

TEST_CASE("remote backend: cancel closes the upstream connection and reports cancelled",
          "[llm][remote]") {
  std::atomic<bool> client_gone{false};
  ScriptedUpstream up([&client_gone](const auto&, int, const auto& write) {
    write(ScriptedUpstream::sse_head());
    // Generates until the client goes away, as an LLM server does.
    for (int i = 0; i < 1000; ++i) {
      if (!write(ScriptedUpstream::delta("tok "))) {
        client_gone = true;
        return;
      }
      std::this_thread::sleep_for(10ms);
    }
  });
  talkserve::obs::MetricsRegistry metrics;
  RemoteChatBackend backend(config_for(up.url()), &metrics);
  Reply r;
  const auto id = backend.chat(kHello, {}, r.on_text(), r.on_done());
  REQUIRE(r.wait_text());
  backend.cancel(id);
  auto out = r.wait();
  CHECK(out.reason == FinishReason::cancelled);
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (!client_gone && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(5ms);
  CHECK(client_gone);
  CHECK(counter(metrics, "cancelled") == 1);
  CHECK(metrics.gauge("talkserve_llm_remote_requests_running", "").value() == 0);
  backend.cancel(id);  // unknown by now: a no-op
}

TEST_CASE("remote backend: stop() cancels replies in flight and refuses new ones",
          "[llm][remote]") {
  ScriptedUpstream up([](const auto&, int, const auto& write) {
    write(ScriptedUpstream::sse_head());
    while (write(ScriptedUpstream::delta("t"))) std::this_thread::sleep_for(10ms);
  });
  RemoteChatBackend backend(config_for(up.url()), nullptr);
  Reply r;
  backend.chat(kHello, {}, r.on_text(), r.on_done());
  REQUIRE(r.wait_text());
  backend.stop();
  CHECK(r.wait().reason == FinishReason::cancelled);
  CHECK_FALSE(backend.chat_ready());
  Reply r2;
  CHECK_THROWS_AS(backend.chat(kHello, {}, r2.on_text(), r2.on_done()), ChatRefused);
}

TEST_CASE("remote backend: probe checks that the upstream answers and serves the model",
          "[llm][remote]") {
  ScriptedUpstream up([](const auto& req, int, const auto& write) {
    if (req["Authorization"] != "Bearer sk-test") {
      write(ScriptedUpstream::response(401, R"({"error":{"message":"Invalid API key"}})"));
      return;
    }
    write(ScriptedUpstream::response(200, R"({"object":"list","data":[{"id":"m1"},{"id":"m2"}]})"));
  });
  auto cfg = config_for(up.url());
  RemoteChatBackend(cfg, nullptr).probe();
  CHECK(up.received().back().target() == "/v1/models");

  cfg.model = "m3";
  CHECK_THROWS_WITH(RemoteChatBackend(cfg, nullptr).probe(),
                    Catch::Contains("\"m3\"") && Catch::Contains("m1, m2"));
  cfg.model = "m1";
  cfg.api_key = "wrong";
  CHECK_THROWS_WITH(RemoteChatBackend(cfg, nullptr).probe(),
                    Catch::Contains("401") && Catch::Contains("Invalid API key"));
  cfg.url = "http://127.0.0.1:" + std::to_string(closed_port());
  CHECK_THROWS_WITH(RemoteChatBackend(cfg, nullptr).probe(), Catch::Contains("connecting"));
}

TEST_CASE("remote backend: a bad url or ca_file is refused at construction", "[llm][remote]") {
  auto cfg = config_for("http://h:8000/v1");
  CHECK_THROWS_AS(RemoteChatBackend(cfg, nullptr), std::invalid_argument);
  cfg = config_for("https://h");
  cfg.ca_file = "/nonexistent/ca.pem";
  CHECK_THROWS_WITH(RemoteChatBackend(cfg, nullptr), Catch::Contains("llm.remote.ca_file"));
}

namespace {

// A complete streamed reply on a kept-alive connection (chunked).
void chunked_reply(const ScriptedUpstream::Write& write, std::string_view text) {
  write(ScriptedUpstream::sse_chunked_head() +
        ScriptedUpstream::chunk(ScriptedUpstream::delta(text)) +
        ScriptedUpstream::chunk(ScriptedUpstream::finish("stop")) + ScriptedUpstream::last_chunk());
}

// "<prefix><i>" (append: GCC 12 warns falsely about `"literal" + std::string`).
std::string numbered(std::string prefix, int i) { return prefix.append(std::to_string(i)); }

double connections(talkserve::obs::MetricsRegistry& m, const std::string& how) {
  return m.counter("talkserve_llm_remote_connections_total", "", {{"how", how}}).value();
}

std::string chat_text(RemoteChatBackend& backend) {
  Reply r;
  backend.chat(kHello, ChatOptions{}, r.on_text(), r.on_done());
  const auto out = r.wait();
  INFO(out.message);
  CHECK(out.reason == FinishReason::stop);
  return r.text;
}

}  // namespace

TEST_CASE("remote backend: replies reuse one kept-alive connection", "[llm][remote]") {
  ScriptedUpstream up([](const auto&, int index, const auto& write) {
    chunked_reply(write, numbered("reply ", index));
  });
  up.keep_alive();
  talkserve::obs::MetricsRegistry metrics;
  RemoteChatBackend backend(config_for(up.url()), &metrics);
  for (int i = 0; i < 3; ++i) CHECK(chat_text(backend) == numbered("reply ", i));
  CHECK(up.requests() == 3);
  CHECK(up.connections() == 1);
  CHECK(connections(metrics, "new") == 1);
  CHECK(connections(metrics, "reused") == 2);
  CHECK(connections(metrics, "stale") == 0);
  for (const auto& req : up.received()) CHECK(req["Connection"] != "close");
  CHECK(counter(metrics, "ok") == 3);
}

namespace {

// Two replies `pause` apart from an upstream that keeps connections, with llm.remote
// keepalive = `keepalive`; checks that the second did not reuse the first's connection.
// Returns the requests the upstream received.
std::vector<ScriptedUpstream::Request> two_replies_on_new_connections(
    std::chrono::milliseconds keepalive, std::chrono::milliseconds pause) {
  ScriptedUpstream up([](const auto&, int, const auto& write) { chunked_reply(write, "hi"); });
  up.keep_alive();
  talkserve::obs::MetricsRegistry metrics;
  auto cfg = config_for(up.url());
  cfg.keepalive = keepalive;
  RemoteChatBackend backend(cfg, &metrics);
  CHECK(chat_text(backend) == "hi");
  std::this_thread::sleep_for(pause);
  CHECK(chat_text(backend) == "hi");
  CHECK(up.connections() == 2);
  CHECK(connections(metrics, "reused") == 0);
  return up.received();
}

}  // namespace

TEST_CASE("remote backend: keepalive 0 opens a connection per reply", "[llm][remote]") {
  for (const auto& req : two_replies_on_new_connections(0ms, 0ms)) {
    CHECK(req["Connection"] == "close");
  }
}

TEST_CASE("remote backend: a connection the upstream closed is not reused, and costs no retry",
          "[llm][remote]") {
  SECTION("closed while idle: seen before use") {
    ScriptedUpstream up([](const auto&, int index, const auto& write) {
      chunked_reply(write, numbered("r", index));
    });
    up.keep_alive(1);  // the upstream closes each connection after one reply
    talkserve::obs::MetricsRegistry metrics;
    RemoteChatBackend backend(config_for(up.url()), &metrics);
    CHECK(chat_text(backend) == "r0");
    std::this_thread::sleep_for(50ms);  // the upstream's FIN arrives
    CHECK(chat_text(backend) == "r1");
    CHECK(up.requests() == 2);
    CHECK(up.connections() == 2);
    CHECK(connections(metrics, "new") == 2);
    CHECK(connections(metrics, "stale") == 0);
  }
  SECTION("closed as the request came: sent again on a new connection") {
    ScriptedUpstream up([](const auto&, int index, const auto& write) {
      if (index == 1) return;  // the reused connection: closed without an answer
      chunked_reply(write, numbered("r", index));
    });
    up.keep_alive();
    talkserve::obs::MetricsRegistry metrics;
    RemoteChatBackend backend(config_for(up.url()), &metrics);
    CHECK(chat_text(backend) == "r0");
    CHECK(chat_text(backend) == "r2");
    CHECK(up.requests() == 3);
    CHECK(up.connections() == 2);
    CHECK(connections(metrics, "stale") == 1);
    CHECK(connections(metrics, "new") == 2);
    CHECK(retries(metrics) == 0);
    CHECK(counter(metrics, "ok") == 2);
  }
  SECTION("idle longer than keepalive: not reused") {
    two_replies_on_new_connections(30ms, 60ms);
  }
}

TEST_CASE("remote backend: a cancelled reply's connection is closed, not reused", "[llm][remote]") {
  std::atomic<bool> release{false};
  ScriptedUpstream up([&](const auto&, int index, const auto& write) {
    if (index == 0) {
      write(ScriptedUpstream::sse_chunked_head() +
            ScriptedUpstream::chunk(ScriptedUpstream::delta("partial")));
      // Keep streaming keep-alive comments until the client goes away.
      while (!release.load() && write(ScriptedUpstream::chunk(": ping\n\n")))
        std::this_thread::sleep_for(5ms);
      return;
    }
    chunked_reply(write, "next");
  });
  up.keep_alive();
  talkserve::obs::MetricsRegistry metrics;
  RemoteChatBackend backend(config_for(up.url()), &metrics);
  Reply r;
  const auto id = backend.chat(kHello, ChatOptions{}, r.on_text(), r.on_done());
  REQUIRE(r.wait_text());
  backend.cancel(id);
  CHECK(r.wait().reason == FinishReason::cancelled);
  CHECK(chat_text(backend) == "next");
  release = true;
  CHECK(up.connections() == 2);
  CHECK(connections(metrics, "reused") == 0);
}
