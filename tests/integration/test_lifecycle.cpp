// The talkserve process from the outside: command line, configuration checking, exit status,
// readiness probes and graceful shutdown on SIGTERM.

#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <regex>
#include <thread>

#include "support/talkserve.hpp"

using namespace talkserve::itest;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

RunResult run(const std::vector<std::string>& args) {
  return run_to_exit(talkserve_binary(), args, 20s);
}

// --check-config of a config file holding `toml`, plus the standard test overrides.
RunResult check_config(const std::string& toml, std::vector<std::string> extra = {}) {
  TempDir dir;
  auto path = dir.write("talkserve.toml", toml);
  std::vector<std::string> args{"--config", path, "--check-config"};
  args.insert(args.end(), extra.begin(), extra.end());
  return run(args);
}

// [[maybe_unused]] here and below: only tests built with TALKSERVE_ITEST_MODELS use it.
[[maybe_unused]] json completion_request(int max_tokens, bool stream) {
  json j{{"model", "stories260K"},   {"prompt", "Once upon a time"}, {"max_tokens", max_tokens},
         {"temperature", 0},         {"ignore_eos", true},           {"stream", stream}};
  if (stream) j["stream_options"] = {{"include_usage", true}};
  return j;
}

}  // namespace

TEST_CASE("talkserve --version prints the version and exits 0", "[lifecycle][cli]") {
  auto r = run({"--version"});
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.exit_status == 0);
  CHECK(std::regex_search(r.out, std::regex(R"(^talkserve \d+\.\d+\.\d+)")));
}

TEST_CASE("talkserve --help prints the usage and exits 0", "[lifecycle][cli]") {
  auto r = run({"--help"});
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.exit_status == 0);
  CHECK_THAT(r.out, Catch::Contains("usage: talkserve"));
  CHECK_THAT(r.out, Catch::Contains("--check-config"));
  CHECK_THAT(r.out, Catch::Contains("--set"));
}

TEST_CASE("an unknown argument exits 2 with the usage on stderr", "[lifecycle][cli]") {
  auto r = run({"--frobnicate"});
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.exit_status == 2);
  CHECK_THAT(r.err, Catch::Contains("--frobnicate"));
  CHECK_THAT(r.err, Catch::Contains("usage: talkserve"));
}

TEST_CASE("talkserve --check-config accepts a good configuration and exits 0", "[lifecycle][config]") {
  auto r = check_config(R"(
[server]
drain_grace_ms = 5000
models_dir = "models"

[http]
host = "127.0.0.1"
port = 9000
io_threads = 2
max_body_bytes = 2097152
cors_allowed_origins = ["http://localhost:3000"]

[gateway]
max_in_flight = 64
[gateway.tiers.vip]
rate_per_s = 50.0
burst = 100.0
[[gateway.keys]]
name = "alice"
key = "sk-alice-secret"
tier = "vip"
[[gateway.keys]]
name = "bob"
key_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
rate_per_s = 1.5
burst = 3

[log]
level = "info"

[llm]
max_num_seqs = 16
default_max_tokens = 128
)");
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.exit_status == 0);
  CHECK_THAT(r.out, Catch::Contains("configuration ok"));
}

#if TALKSERVE_ITEST_MODELS  // needs the LLM
TEST_CASE("talkserve --check-config with no file checks the defaults plus --set overrides",
          "[lifecycle][config]") {
  auto r = run({"--check-config", "--set", "http.port=0", "--set", "llm.max_num_seqs=8"});
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.exit_status == 0);
}
#endif

namespace {

// Each talkserve start costs ~1 s of shared-library loading (libtorch), so the exhaustive list
// of configuration errors lives in the unit tests (tests/unit/app); these check the exit path.
void expect_bad_config(const std::string& toml, const std::vector<std::string>& overrides,
                       const std::vector<std::string>& expected) {
  auto r = check_config(toml, overrides);
  INFO("config:\n" << toml << "\nstdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.exit_status == 2);
  CHECK_THAT(r.err, Catch::Contains("bad configuration"));
  for (const auto& s : expected) CHECK_THAT(r.err, Catch::Contains(s));
  CHECK_THAT(r.out, !Catch::Contains("configuration ok"));
}

}  // namespace

TEST_CASE("a bad configuration exits 2 naming the key: unknown key", "[lifecycle][config]") {
  expect_bad_config("[http]\nportt = 8080\n", {}, {"http.portt", "unknown key"});
}

TEST_CASE("a bad configuration exits 2 naming the key: wrong type", "[lifecycle][config]") {
  expect_bad_config("[http]\nport = \"eighty\"\n", {}, {"http.port", "integer"});
}

TEST_CASE("a bad configuration exits 2 naming the key: port 70000", "[lifecycle][config]") {
  expect_bad_config("[http]\nport = 70000\n", {}, {"http.port", "out of range"});
}

TEST_CASE("a bad configuration exits 2 naming the key: a --set override", "[lifecycle][config]") {
  expect_bad_config("", {"--set", "gateway.max_in_flight=0"}, {"gateway.max_in_flight"});
}

TEST_CASE("a bad configuration exits 2 naming the key: missing keys file", "[lifecycle][config]") {
  expect_bad_config("[gateway]\nkeys_file = \"/nonexistent/talkserve-keys\"\n", {},
                    {"gateway.keys_file"});
}

TEST_CASE("a bad configuration exits 2 naming the place: TOML syntax error", "[lifecycle][config]") {
  expect_bad_config("[http\nport = 1\n", {}, {"talkserve.toml:1"});
}

TEST_CASE("a bad configuration stops the server before it listens (exit 2)",
          "[lifecycle][config]") {
  auto args = base_args();
  args.insert(args.end(), {"--set", "http.port=70000"});
  auto r = run(args);
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.exit_status == 2);
  CHECK_THAT(r.err, Catch::Contains("http.port"));
  CHECK_THAT(r.out, !Catch::Contains("listening"));
}

TEST_CASE("a port that is already taken exits 1 with the reason", "[lifecycle]") {
  Talkserve first;
  auto args = base_args();
  args.insert(args.end(), {"--set", "http.port=" + std::to_string(first.port())});
  auto r = run(args);
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.exit_status == 1);
  CHECK_THAT(r.err, Catch::Contains("cannot listen"));
}

#if TALKSERVE_ITEST_MODELS  // needs the LLM
TEST_CASE("a model that cannot be loaded makes the server exit 1", "[lifecycle][llm]") {
  auto args = base_args();
  args.insert(args.end(), {"--set", "llm.model=\"does-not-exist/model.bin\""});
  auto r = run(args);
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  CHECK(r.exit_status == 1);
  CHECK_THAT(r.err, Catch::Contains("does-not-exist"));
}
#endif

TEST_CASE("/healthz answers 200", "[lifecycle][probes]") {
  Talkserve server(Talkserve::not_waiting_for_ready());
  auto res = server.client().get("/healthz");
  INFO(res.body);
  CHECK(res.status == 200);
  CHECK_THAT(res.header("Content-Type").value_or(""), Catch::Contains("application/json"));
  CHECK(res.json()["status"] == "ok");
}

#if TALKSERVE_ITEST_MODELS  // needs the LLM
TEST_CASE("/readyz answers 200 once the models are loaded", "[lifecycle][probes]") {
  Talkserve server(Talkserve::not_waiting_for_ready());
  auto client = server.client();
  // Until the models are in, /readyz says 503 "loading" with Retry-After; then 200 "ready".
  unsigned status = 0;
  bool ready = poll_until(
      [&] {
        auto res = client.get("/readyz");
        status = res.status;
        if (res.status == 503) {
          CHECK(res.json()["status"] == "loading");
          CHECK(res.header("Retry-After").has_value());
        }
        return res.status == 200;
      },
      30s, 20ms);
  INFO(server.diagnostics());
  REQUIRE(ready);
  auto res = client.get("/readyz");
  CHECK(res.json()["status"] == "ready");
  // Ready means the LLM can serve.
  CHECK(client.get("/v1/models").status == 200);
}
#endif

TEST_CASE("SIGTERM on an idle server exits 0 well within the drain grace", "[lifecycle][signals]") {
  Talkserve server({"--set", "server.drain_grace_ms=5000"});
  // A keep-alive-less request first so the server has served something.
  REQUIRE(server.client().get("/healthz").status == 200);
  const auto t0 = std::chrono::steady_clock::now();
  server.process().send_signal(SIGTERM);
  auto status = server.process().wait_exit(10s);
  const auto took = std::chrono::steady_clock::now() - t0;
  INFO(server.diagnostics());
  REQUIRE(status.has_value());
  CHECK(*status == 0);
  CHECK(took < 3s);  // nothing in flight: no reason to wait out the grace
  CHECK_THAT(server.process().stderr_text(), Catch::Contains("draining"));
}

TEST_CASE("SIGINT also shuts down cleanly with exit 0", "[lifecycle][signals]") {
  Talkserve server;
  server.process().send_signal(SIGINT);
  auto status = server.process().wait_exit(10s);
  INFO(server.diagnostics());
  REQUIRE(status.has_value());
  CHECK(*status == 0);
}

#if TALKSERVE_ITEST_MODELS  // needs the LLM
TEST_CASE("SIGTERM lets an in-flight request finish and refuses new connections",
          "[lifecycle][signals][llm]") {
  Talkserve server({"--set", "server.drain_grace_ms=20000"});
  auto client = server.client(20s);
  const int max_tokens = 400;
  SseStream stream(client, "/v1/completions", completion_request(max_tokens, true));
  INFO(server.diagnostics());
  REQUIRE(stream.status() == 200);
  auto first = stream.next_data();
  REQUIRE(first.has_value());  // the request is running now

  server.process().send_signal(SIGTERM);
  // Draining closes the listener: a new connection is refused while the process is still
  // alive finishing the stream (checked below by reading the stream to its end).
  bool refused = poll_until([&] { return connection_refused(server.host(), server.port()); }, 5s,
                            5ms);
  CHECK(refused);
  // Refused by a process that is still draining, not by one that is already gone: it cannot
  // exit before the stream below has been written out.
  CHECK_FALSE(server.process().exited());

  // The in-flight stream runs to its natural end.
  std::vector<std::string> rest = stream.read_all();
  REQUIRE_FALSE(rest.empty());
  CHECK(rest.back() == "[DONE]");
  int completion_tokens = -1;
  std::string finish_reason;
  for (const auto& d : rest) {
    if (d == "[DONE]") continue;
    auto j = json::parse(d);
    if (!j["choices"].empty() && !j["choices"][0]["finish_reason"].is_null())
      finish_reason = j["choices"][0]["finish_reason"];
    if (j.contains("usage") && j["usage"].is_object())
      completion_tokens = j["usage"]["completion_tokens"];
  }
  CHECK(finish_reason == "length");
  CHECK(completion_tokens == max_tokens);

  auto status = server.process().wait_exit(25s);
  REQUIRE(status.has_value());
  CHECK(*status == 0);
}
#endif

#if TALKSERVE_ITEST_MODELS  // needs the LLM
TEST_CASE("SIGTERM with a non-streamed request in flight: the response still arrives",
          "[lifecycle][signals][llm]") {
  Talkserve server({"--set", "server.drain_grace_ms=20000"});
  auto client = server.client(20s);
  HttpResponse res;
  std::exception_ptr failure;
  std::thread requester([&] {
    try {
      res = client.post_json("/v1/completions", completion_request(400, false));
    } catch (...) {
      failure = std::current_exception();
    }
  });
  // Wait until the gateway has admitted it, then ask the server to stop.
  bool admitted = poll_until(
      [&] { return server.metrics().value("talkserve_in_flight_requests").value_or(0) >= 1; }, 10s,
      2ms);
  server.process().send_signal(SIGTERM);
  requester.join();
  INFO(server.diagnostics());
  if (failure) std::rethrow_exception(failure);
  CHECK(admitted);
  CHECK(res.status == 200);
  if (res.status == 200) {
    auto j = res.json();
    CHECK(j["usage"]["completion_tokens"] == 400);
    CHECK(j["choices"][0]["finish_reason"] == "length");
  }
  auto status = server.process().wait_exit(25s);
  REQUIRE(status.has_value());
  CHECK(*status == 0);
}
#endif
