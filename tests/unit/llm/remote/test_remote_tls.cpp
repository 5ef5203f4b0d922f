// RemoteChatBackend over https:// against a TLS server in the test, with throwaway
// self-signed certificates made by the openssl CLI at test time: a trusted CA file works (by
// IP and by name), an untrusted certificate or a name mismatch fails the handshake with a
// clear verification error and is not retried.

#include <catch2/catch.hpp>

#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <optional>

#include "scripted_upstream.hpp"
#include "support/temp_dir.hpp"
#include "talkserve/llm/remote_chat_backend.hpp"
#include "talkserve/obs/metrics.hpp"

using namespace talkserve::llm;
using talkserve::test::ScriptedUpstream;
using talkserve::test::TempDir;
using namespace std::chrono_literals;

namespace {

// <dir>/<name>.crt and .key: a self-signed P-256 certificate for `san`, valid for a day.
ScriptedUpstream::Tls make_cert(const TempDir& dir, const std::string& name,
                                const std::string& san) {
  const std::string crt = (dir.path() / (name + ".crt")).string();
  const std::string key = (dir.path() / (name + ".key")).string();
  const std::string cmd =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
      "-subj /CN=" + name + " -addext 'subjectAltName=" + san + "' -keyout '" + key +
      "' -out '" + crt + "' 2>/dev/null";
  REQUIRE(std::system(cmd.c_str()) == 0);
  return {crt, key};
}

struct Result {
  std::mutex mutex;
  std::condition_variable cv;
  std::string text;
  std::optional<ChatOutcome> outcome;
};

ChatOutcome run_chat(RemoteChatBackend& backend, std::string& text) {
  Result r;
  backend.chat({{"user", "hi"}}, {},
               [&r](std::string d) {
                 std::lock_guard lock(r.mutex);
                 r.text += d;
               },
               [&r](ChatOutcome o) {
                 std::lock_guard lock(r.mutex);
                 r.outcome = std::move(o);
                 r.cv.notify_all();
               });
  std::unique_lock lock(r.mutex);
  REQUIRE(r.cv.wait_for(lock, 20s, [&] { return r.outcome.has_value(); }));
  text = r.text;
  return *r.outcome;
}

void stream_reply(const ScriptedUpstream::Request&, int, const ScriptedUpstream::Write& write) {
  write(ScriptedUpstream::sse_head() + ScriptedUpstream::delta("secure") +
        ScriptedUpstream::finish("stop"));
}

RemoteChatConfig tls_config(const std::string& url, const std::string& ca_file) {
  RemoteChatConfig c;
  c.url = url;
  c.model = "m";
  c.ca_file = ca_file;
  c.backoff = 1ms;
  c.max_backoff = 10ms;
  return c;
}

}  // namespace

TEST_CASE("remote tls: a certificate signed by ca_file is verified, by IP and by name",
          "[llm][remote][tls]") {
  TempDir dir;
  const auto cert = make_cert(dir, "upstream", "DNS:localhost,IP:127.0.0.1");
  ScriptedUpstream up(stream_reply, cert);
  for (const std::string host : {"127.0.0.1", "localhost"}) {
    INFO(host);
    RemoteChatBackend backend(
        tls_config("https://" + host + ":" + std::to_string(up.port()), cert.cert_file), nullptr);
    std::string text;
    const auto out = run_chat(backend, text);
    INFO(out.message);
    CHECK(out.reason == FinishReason::stop);
    CHECK(text == "secure");
  }
  CHECK(up.failed_handshakes() == 0);
}

TEST_CASE("remote tls: replies reuse the verified connection, with no new handshake",
          "[llm][remote][tls]") {
  TempDir dir;
  const auto cert = make_cert(dir, "upstream", "DNS:localhost,IP:127.0.0.1");
  ScriptedUpstream up(
      [](const ScriptedUpstream::Request&, int, const ScriptedUpstream::Write& write) {
        write(ScriptedUpstream::sse_chunked_head() +
              ScriptedUpstream::chunk(ScriptedUpstream::delta("secure")) +
              ScriptedUpstream::chunk(ScriptedUpstream::finish("stop")) +
              ScriptedUpstream::last_chunk());
      },
      cert);
  up.keep_alive();
  RemoteChatBackend backend(
      tls_config("https://localhost:" + std::to_string(up.port()), cert.cert_file), nullptr);
  for (int i = 0; i < 3; ++i) {
    std::string text;
    const auto out = run_chat(backend, text);
    INFO(out.message);
    CHECK(out.reason == FinishReason::stop);
    CHECK(text == "secure");
  }
  CHECK(up.requests() == 3);
  CHECK(up.connections() == 1);
}

TEST_CASE("remote tls: an untrusted certificate fails verification clearly, without retries",
          "[llm][remote][tls]") {
  TempDir dir;
  const auto cert = make_cert(dir, "upstream", "IP:127.0.0.1");
  const auto other = make_cert(dir, "other-ca", "IP:127.0.0.1");
  ScriptedUpstream up(stream_reply, cert);
  // A CA file that did not sign the server's certificate, and the system store (which knows
  // nothing of a self-signed test certificate).
  for (const std::string& ca : {other.cert_file, std::string()}) {
    INFO("ca_file = " << ca);
    talkserve::obs::MetricsRegistry metrics;
    RemoteChatBackend backend(tls_config(up.url(), ca), &metrics);
    std::string text;
    const auto out = run_chat(backend, text);
    CHECK(out.reason == FinishReason::error);
    CHECK(out.status == 502);
    CHECK_THAT(out.message, Catch::Contains("TLS handshake failed") &&
                                Catch::Contains("certificate verify failed") &&
                                Catch::Contains("self-signed certificate") &&
                                Catch::Contains(up.url()));
    CHECK(text.empty());
    CHECK(up.requests() == 0);
    CHECK(metrics.counter("talkserve_llm_remote_retries_total", "").value() == 0);
    CHECK(metrics.counter("talkserve_llm_remote_requests_total", "", {{"outcome", "tls_error"}})
              .value() == 1);
  }
}

TEST_CASE("remote tls: a certificate for another name is refused", "[llm][remote][tls]") {
  TempDir dir;
  const auto cert = make_cert(dir, "elsewhere", "DNS:llm.example");
  ScriptedUpstream up(stream_reply, cert);
  RemoteChatBackend backend(tls_config(up.url(), cert.cert_file), nullptr);
  std::string text;
  const auto out = run_chat(backend, text);
  CHECK(out.reason == FinishReason::error);
  CHECK_THAT(out.message, Catch::Contains("TLS handshake failed") &&
                              Catch::Contains("certificate verify failed") &&
                              Catch::Contains("not valid for 127.0.0.1"));
  CHECK(up.requests() == 0);
}
