// llm.backend = "remote" with two real talkserve processes: an upstream serving stories260K's
// OpenAI routes, and a front whose talk pipeline streams its replies from that upstream.
// Checked: a talk turn and a live-stream turn reply exactly what the upstream's greedy chat
// says; a wrong upstream key reaches the client as a clear 502 naming the upstream's 401; a
// dead upstream is a 502 after the configured retries (counted in /metrics) and the front
// recovers when an upstream is back on the port; a cancelled live response cancels the
// upstream's request (its engine counts it cancelled and runs nothing afterwards).

#include <catch2/catch.hpp>

#include "support/checks.hpp"
#include "support/talkserve.hpp"
#include "support/ws_client.hpp"

using namespace talkserve::itest;
using namespace std::chrono_literals;
using nlohmann::json;
using talkserve::test::WsClient;

namespace {

constexpr const char* kUpstreamKey = "sk-upstream-test-key";
constexpr const char* kKeyEnv = "TALKSERVE_TEST_UPSTREAM_KEY";

// The LLM alone (no speech, no talk): what a dedicated LLM box runs.
Talkserve::Options upstream_options(bool with_key, std::uint16_t port = 0) {
  Talkserve::Options o;
  o.args = {"--set", "asr.enabled=false", "--set", "tts.enabled=false", "--set",
            "talk.enabled=false"};
  if (with_key) {
    o.args.insert(o.args.end(), {"--set", std::string("gateway.keys=[{name=\"front\", key=\"") +
                                              kUpstreamKey +
                                              "\", tier=\"vip\", rate_per_s=1000.0, burst=1000.0}]"});
  }
  if (port != 0) o.args.insert(o.args.end(), {"--set", "http.port=" + std::to_string(port)});
  o.startup_timeout = 60s;
  return o;
}

// Talk over a remote LLM; no ASR (the turns here are typed).
Talkserve::Options front_options(const Talkserve& upstream, const std::string& key = "",
                                 std::vector<std::string> extra = {}) {
  Talkserve::Options o;
  const std::string url = "http://127.0.0.1:" + std::to_string(upstream.port());
  o.args = {"--set", "llm.backend=\"remote\"",
            "--set", "llm.remote.url=\"" + url + "\"",
            "--set", "llm.remote.model=\"stories260K\"",
            "--set", "llm.remote.context_length=512",
            "--set", "llm.remote.max_retries=2",
            "--set", "llm.remote.backoff_ms=20",
            "--set", "llm.remote.max_backoff_ms=100",
            "--set", "llm.remote.connect_timeout_ms=2000",
            "--set", "asr.enabled=false"};
  if (!key.empty()) {
    o.args.insert(o.args.end(), {"--set", std::string("llm.remote.api_key_env=\"") + kKeyEnv + "\""});
    o.env.emplace_back(kKeyEnv, key);
  }
  o.args.insert(o.args.end(), extra.begin(), extra.end());
  o.startup_timeout = 60s;
  return o;
}

// The upstream's own greedy reply to one user message, as the talk turn asks for it.
std::string greedy_chat(const Talkserve& upstream, const std::string& text, int max_tokens,
                        std::string* finish_reason = nullptr) {
  Headers h{{"Authorization", std::string("Bearer ") + kUpstreamKey}};
  auto res = upstream.client(60s).post_json(
      "/v1/chat/completions",
      json{{"model", "stories260K"},
           {"messages", json::array({json{{"role", "user"}, {"content", text}}})},
           {"max_tokens", max_tokens},
           {"temperature", 0},
           {"seed", 0}},
      h);
  INFO(res.body);
  REQUIRE(res.status == 200);
  const json j = res.json();
  if (finish_reason) *finish_reason = j["choices"][0]["finish_reason"];
  return j["choices"][0]["message"]["content"];
}

double metric(const Talkserve& s, const std::string& name, const MetricLabels& labels = {}) {
  return s.metrics().value(name, labels).value_or(-1);
}

// A live session on the front: session.start without video, then typed turns.
class LiveText {
 public:
  explicit LiveText(const Talkserve& server) : ws_(server.port()) {
    REQUIRE_FALSE(ws_.handshake("/v1/stream", 10s));
    send({{"type", "session.start"}, {"video", false}});
    until("session.started");
  }
  void send(const json& j) { REQUIRE_FALSE(ws_.send_text(j.dump(), 10s)); }
  // The next JSON event of `type` (binary frames and other events skipped); REQUIREs no error.
  json until(const std::string& type) {
    for (;;) {
      auto m = ws_.read(60s);
      REQUIRE(m);
      if (m->binary) continue;
      json e = json::parse(m->data);
      INFO(e.dump());
      if (e["type"] == type) return e;
      REQUIRE(e["type"] != "error");
    }
  }

 private:
  WsClient ws_;
};

}  // namespace

TEST_CASE("remote llm: talk and live turns reply what the upstream's greedy chat says",
          "[remote][talk]") {
  Talkserve upstream(upstream_options(true));
  Talkserve front(front_options(upstream, kUpstreamKey));
  auto client = front.client(120s);

  const std::string text = "Tell me a story about a cat.";
  auto res = client.post_json("/v1/talk", json{{"text", text}});
  INFO(res.body);
  REQUIRE(res.status == 200);
  const std::string reply = res.json()["reply"];
  CHECK(reply == greedy_chat(upstream, text, 96));  // talk.max_tokens defaults to 96
  CHECK(metric(front, "talkserve_llm_remote_requests_total", {{"outcome", "ok"}}) == 1);
  CHECK(metric(front, "talkserve_llm_remote_retries_total") == 0);

  LiveText live(front);
  const std::string text2 = "Tell me about a dog.";
  live.send({{"type", "input.text"}, {"text", text2}});
  const json done = live.until("reply.done");
  CHECK(done["text"] == greedy_chat(upstream, text2, 96));
  // Both replies went on one upstream connection, kept alive in between.
  CHECK(metric(front, "talkserve_llm_remote_connections_total", {{"how", "new"}}) == 1);
  CHECK(metric(front, "talkserve_llm_remote_connections_total", {{"how", "reused"}}) == 1);

  // The front serves no model of its own: its OpenAI routes say so.
  auto chat = client.post_json("/v1/chat/completions",
                               json{{"model", "stories260K"},
                                    {"messages", json::array({json{{"role", "user"}, {"content", "hi"}}})}});
  check_error_mentions(chat, 404, "llm.backend");
  CHECK(chat.json()["error"]["code"] == "llm_is_remote");
}

TEST_CASE("remote llm: a wrong upstream key is a clear 502 naming the upstream's 401",
          "[remote][talk]") {
  Talkserve upstream(upstream_options(true));
  Talkserve front(front_options(upstream, "sk-wrong"));
  auto res = front.client(60s).post_json("/v1/talk", json{{"text", "Hello there."}});
  INFO(res.body);
  check_error_mentions(res, 502, "answered 401");
  const std::string message = res.json()["error"]["message"];
  CHECK_THAT(message, Catch::Contains("127.0.0.1:" + std::to_string(upstream.port())));
  CHECK(message.find("sk-wrong") == std::string::npos);  // the key is never echoed
  // Not retried: a key does not get better by asking again.
  CHECK(metric(front, "talkserve_llm_remote_retries_total") == 0);
  CHECK(metric(front, "talkserve_llm_remote_requests_total", {{"outcome", "upstream_error"}}) == 1);
}

TEST_CASE("remote llm: a dead upstream is a 502 after bounded retries; a new one is used",
          "[remote][talk]") {
  auto upstream = std::make_unique<Talkserve>(upstream_options(false));
  const std::uint16_t port = upstream->port();
  Talkserve front(front_options(*upstream));
  auto client = front.client(120s);
  REQUIRE(client.post_json("/v1/talk", json{{"text", "Hello."}}).status == 200);

  upstream->process().kill_now();
  upstream.reset();
  auto res = client.post_json("/v1/talk", json{{"text", "Hello again."}});
  INFO(res.body);
  check_error_mentions(res, 502, "127.0.0.1:" + std::to_string(port));
  CHECK_THAT(res.json()["error"]["message"].get<std::string>(),
             Catch::Contains("after 3 attempts"));  // max_retries = 2
  CHECK(metric(front, "talkserve_llm_remote_retries_total") == 2);
  CHECK(metric(front, "talkserve_llm_remote_requests_total", {{"outcome", "unreachable"}}) == 1);

  // A replacement upstream on the same address: the next turn goes through.
  Talkserve again(upstream_options(false, port));
  auto ok = client.post_json("/v1/talk", json{{"text", "Hello again."}});
  INFO(ok.body);
  CHECK(ok.status == 200);
  CHECK(metric(front, "talkserve_llm_remote_requests_total", {{"outcome", "ok"}}) == 2);
}

TEST_CASE("remote llm: cancelling a live response cancels the upstream's request",
          "[remote][live]") {
  Talkserve upstream(upstream_options(false));
  // A prompt whose greedy reply runs to the length limit, so the upstream is still
  // generating when the cancel arrives.
  const int max_tokens = 480;
  std::string prompt;
  for (const char* candidate : {"Once upon a time", "Tell me a long story.", "The little girl",
                                "Lily and Tom played"}) {
    std::string finish;
    greedy_chat(upstream, candidate, max_tokens, &finish);
    if (finish == "length") {
      prompt = candidate;
      break;
    }
  }
  REQUIRE_FALSE(prompt.empty());
  const double cancelled_before = metric(upstream, "talkserve_request_success_total",
                                         {{"finished_reason", "cancelled"}});

  Talkserve front(front_options(upstream, "", {"--set", "talk.max_tokens=" + std::to_string(max_tokens)}));
  LiveText live(front);
  live.send({{"type", "input.text"}, {"text", prompt}});
  live.until("reply.delta");
  live.send({{"type", "response.cancel"}});
  live.until("response.cancelled");

  CHECK(poll_until(
      [&] {
        return metric(upstream, "talkserve_request_success_total",
                      {{"finished_reason", "cancelled"}}) == cancelled_before + 1;
      },
      10s));
  CHECK(poll_until([&] { return metric(upstream, "talkserve_num_requests_running") == 0; }, 10s));
  CHECK(poll_until(
      [&] {
        return metric(front, "talkserve_llm_remote_requests_total", {{"outcome", "cancelled"}}) == 1;
      },
      10s));
  CHECK(metric(front, "talkserve_llm_remote_requests_running") == 0);
}

TEST_CASE("remote llm: bad llm.remote settings stop the server with the key named",
          "[remote][config]") {
  struct Case {
    std::vector<std::string> sets;
    std::string mentions;
  };
  const std::vector<Case> cases{
      {{}, "llm.remote.url must be set"},
      {{"llm.remote.url=\"http://h:8000/v1\"", "llm.remote.model=\"m\""}, "llm.remote.url must be the server's base URL without /v1"},
      {{"llm.remote.url=\"ftp://h\"", "llm.remote.model=\"m\""}, "llm.remote.url must start with http:// or https://"},
      {{"llm.remote.url=\"http://h\""}, "llm.remote.model must name"},
      {{"llm.remote.url=\"http://h\"", "llm.remote.model=\"m\"", "llm.remote.api_key_env=\"TALKSERVE_TEST_UNSET_VARIABLE\""},
       "llm.remote.api_key_env names the environment variable TALKSERVE_TEST_UNSET_VARIABLE, which is not set"},
      {{"llm.remote.url=\"http://h\"", "llm.remote.model=\"m\"", "llm.remote.max_retries=-1"}, "llm.remote.max_retries"},
      {{"llm.remote.url=\"http://h\"", "llm.remote.model=\"m\"", "llm.remote.timeout_ms=0"}, "llm.remote.timeout_ms"},
      {{"llm.remote.url=\"http://h\"", "llm.remote.model=\"m\"", "llm.remote.ca_file=\"/nonexistent.pem\""}, "llm.remote.ca_file"},
      {{"llm.remote.url=\"http://h\"", "llm.remote.model=\"m\"", "llm.remote.colour=1"}, "llm.remote.colour: unknown key"},
      {{"llm.remote.url=\"http://h\"", "llm.remote.model=\"m\"", "llm.remote.keepalive_ms=-1"}, "llm.remote.keepalive_ms must be between 0 and 3600000"},
      {{"llm.remote.url=\"http://h\"", "llm.remote.model=\"m\"", "llm.remote.max_idle_connections=2000"}, "llm.remote.max_idle_connections must be between 0 and 1024"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = base_args();
    args.insert(args.end(), {"--check-config", "--set", "llm.backend=\"remote\""});
    for (const auto& s : c.sets) args.insert(args.end(), {"--set", s});
    const RunResult r = run_to_exit(talkserve_binary(), args);
    INFO(r.err);
    CHECK(r.exit_status == 2);
    CHECK_THAT(r.err, Catch::Contains(c.mentions));
  }
  std::vector<std::string> args = base_args();
  args.insert(args.end(), {"--check-config", "--set", "llm.backend=\"elsewhere\""});
  CHECK_THAT(run_to_exit(talkserve_binary(), args).err, Catch::Contains("llm.backend must be local or remote"));
}
