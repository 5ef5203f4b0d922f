// The OpenAI-compatible LLM routes of the running server with the embedded stories260K model:
// golden greedy output, streaming, chat, errors, cancellation and continuous batching.

#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <regex>
#include <set>
#include <thread>

#include "support/checks.hpp"
#include "support/talkserve.hpp"
#include "support/ws_client.hpp"

using namespace talkserve::itest;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

const std::string kModel = "stories260K";
const std::string kPrompt = "Once upon a time";

// What the reference llama2.c run.c prints after the prompt for greedy decoding.
std::string golden_continuation() {
  auto path = std::filesystem::path(shared_dir()) / "models" / "stories260K" / "golden_greedy.stdout";
  std::string golden = read_file(path);
  REQUIRE(golden.rfind(kPrompt, 0) == 0);
  return golden.substr(kPrompt.size());
}

json greedy_completion(int max_tokens = 40) {
  return json{{"model", kModel}, {"prompt", kPrompt}, {"max_tokens", max_tokens},
              {"temperature", 0}};
}

json greedy_chat(int max_tokens = 24) {
  return json{{"model", kModel},
              {"messages", json::array({{{"role", "user"}, {"content", "Tell me a story."}}})},
              {"max_tokens", max_tokens},
              {"temperature", 0}};
}

// POST `body` and require a 200 JSON answer.
json post_ok(const HttpClient& client, const std::string& target, const json& body) {
  auto res = client.post_json(target, body);
  INFO("POST " << target << " " << body.dump() << "\n-> " << res.status << " " << res.body);
  REQUIRE(res.status == 200);
  return res.json();
}

struct ParsedStream {
  std::vector<json> chunks;  // every data payload but [DONE], parsed
  bool done_last = false;    // the last payload was [DONE]
  std::string text;          // concatenated choices[0].text (or delta.content for chat)
  std::string finish_reason;
  std::optional<json> usage;  // from the usage chunk (choices: [])
};

ParsedStream parse_stream(const std::vector<std::string>& data, bool chat) {
  ParsedStream out;
  REQUIRE_FALSE(data.empty());
  out.done_last = data.back() == "[DONE]";
  for (std::size_t i = 0; i < data.size(); ++i) {
    if (data[i] == "[DONE]") {
      CHECK(i + 1 == data.size());  // nothing after [DONE]
      continue;
    }
    json j;
    INFO("chunk " << i << ": " << data[i]);
    REQUIRE_NOTHROW(j = json::parse(data[i]));
    out.chunks.push_back(j);
    REQUIRE(j["choices"].is_array());
    if (j["choices"].empty()) {
      REQUIRE(j.contains("usage"));
      out.usage = j["usage"];
      continue;
    }
    const auto& c = j["choices"][0];
    if (chat) {
      if (c["delta"].contains("content") && c["delta"]["content"].is_string())
        out.text += c["delta"]["content"].get<std::string>();
    } else {
      out.text += c["text"].get<std::string>();
    }
    if (!c["finish_reason"].is_null()) {
      CHECK(out.finish_reason.empty());  // exactly one chunk finishes
      out.finish_reason = c["finish_reason"];
    }
  }
  return out;
}

}  // namespace

TEST_CASE("GET /v1/models lists the served model", "[llm][models]") {
  Talkserve server;
  auto res = server.client().get("/v1/models");
  INFO(res.body);
  REQUIRE(res.status == 200);
  auto j = res.json();
  CHECK(j["object"] == "list");
  REQUIRE(j["data"].is_array());
  REQUIRE(j["data"].size() == 1);
  CHECK(j["data"][0]["id"] == kModel);
  CHECK(j["data"][0]["object"] == "model");
}

TEST_CASE("greedy completion reproduces the reference llama2.c output", "[llm][completions]") {
  Talkserve server;
  auto j = post_ok(server.client(), "/v1/completions", greedy_completion(40));
  const std::string golden = golden_continuation();

  CHECK(j["object"] == "text_completion");
  CHECK(j["id"].is_string());
  CHECK(j["created"].is_number_integer());
  CHECK(j["model"] == kModel);
  REQUIRE(j["choices"].size() == 1);
  const auto& c = j["choices"][0];
  CHECK(c["index"] == 0);
  CHECK(c["finish_reason"] == "length");
  CHECK(c["logprobs"].is_null());
  const std::string text = c["text"];
  INFO("text:   [" << text << "]\ngolden: [" << golden << "]");
  CHECK(text.size() >= 100);
  CHECK(golden.rfind(text, 0) == 0);  // a prefix of the golden bytes
  CHECK(j["usage"]["completion_tokens"] == 40);
  CHECK(j["usage"]["prompt_tokens"].get<int>() > 0);
  CHECK(j["usage"]["total_tokens"] ==
        j["usage"]["prompt_tokens"].get<int>() + j["usage"]["completion_tokens"].get<int>());
}

TEST_CASE("a stop string ends the completion before it", "[llm][completions]") {
  Talkserve server;
  auto body = greedy_completion(60);
  body["stop"] = json::array({"Lily"});
  auto j = post_ok(server.client(), "/v1/completions", body);
  const std::string golden = golden_continuation();
  const std::string expected = golden.substr(0, golden.find("Lily"));
  CHECK(j["choices"][0]["text"] == expected);
  CHECK(j["choices"][0]["finish_reason"] == "stop");
}

TEST_CASE("seeded sampling is reproducible", "[llm][completions]") {
  Talkserve server;
  auto client = server.client();
  json body{{"model", kModel}, {"prompt", kPrompt}, {"max_tokens", 30},
            {"temperature", 1.0}, {"top_p", 0.9},   {"top_k", 40},
            {"seed", 1234}};
  auto a = post_ok(client, "/v1/completions", body);
  auto b = post_ok(client, "/v1/completions", body);
  CHECK(a["choices"][0]["text"] == b["choices"][0]["text"]);
}

TEST_CASE("streamed completion chunks add up to the non-streamed text", "[llm][streaming]") {
  Talkserve server;
  auto client = server.client();
  auto whole = post_ok(client, "/v1/completions", greedy_completion(40));

  auto body = greedy_completion(40);
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  SseStream stream(client, "/v1/completions", body);
  REQUIRE(stream.status() == 200);
  CHECK_THAT(stream.header("Content-Type").value_or(""), Catch::StartsWith("text/event-stream"));
  auto data = stream.read_all();
  auto s = parse_stream(data, false);

  CHECK(s.done_last);
  CHECK(s.text == whole["choices"][0]["text"].get<std::string>());
  CHECK(s.finish_reason == "length");
  std::set<std::string> ids;
  for (const auto& c : s.chunks) {
    CHECK(c["object"] == "text_completion");
    CHECK(c["model"] == kModel);
    ids.insert(c["id"].get<std::string>());
  }
  CHECK(ids.size() == 1);  // one id for the whole stream
  REQUIRE(s.usage.has_value());
  CHECK((*s.usage)["completion_tokens"] == 40);
  CHECK((*s.usage)["prompt_tokens"] == whole["usage"]["prompt_tokens"]);
  // The usage chunk is the last one before [DONE], after the finish_reason chunk.
  REQUIRE(s.chunks.size() >= 2);
  CHECK(s.chunks.back()["choices"].empty());
}

TEST_CASE("a stream coalesced under back-pressure still ends with finish_reason and DONE",
          "[llm][streaming]") {
  // A one-message stream queue: nearly every token finds the queue full, so text is coalesced
  // and the tail (last text, finish chunk, usage, [DONE]) goes out from the writer's drain
  // callback after the engine has finished the request.
  Talkserve server({"--set", "http.stream_queue_limit=1"});
  auto client = server.client(10s);
  auto body = greedy_completion(200);
  body["ignore_eos"] = true;
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  auto plain = greedy_completion(200);
  plain["ignore_eos"] = true;
  auto expected = post_ok(client, "/v1/completions", plain);
  for (int round = 0; round < 5; ++round) {
    INFO("round " << round);
    auto s = parse_stream(sse_post(client, "/v1/completions", body), false);
    CHECK(s.done_last);
    CHECK(s.finish_reason == "length");
    CHECK(s.text == expected["choices"][0]["text"].get<std::string>());
    REQUIRE(s.usage.has_value());
    CHECK((*s.usage)["completion_tokens"] == 200);
  }
}

TEST_CASE("streamed completion without include_usage has no usage chunk", "[llm][streaming]") {
  Talkserve server;
  auto body = greedy_completion(10);
  body["stream"] = true;
  auto s = parse_stream(sse_post(server.client(), "/v1/completions", body), false);
  CHECK(s.done_last);
  CHECK_FALSE(s.usage.has_value());
  CHECK(s.finish_reason == "length");
}

TEST_CASE("chat completion answers as the assistant", "[llm][chat]") {
  Talkserve server;
  auto j = post_ok(server.client(), "/v1/chat/completions", greedy_chat(24));
  CHECK(j["object"] == "chat.completion");
  CHECK(j["model"] == kModel);
  REQUIRE(j["choices"].size() == 1);
  const auto& c = j["choices"][0];
  CHECK(c["index"] == 0);
  CHECK(c["message"]["role"] == "assistant");
  REQUIRE(c["message"]["content"].is_string());
  CHECK_FALSE(c["message"]["content"].get<std::string>().empty());
  CHECK((c["finish_reason"] == "length" || c["finish_reason"] == "stop"));
  CHECK(j["usage"]["completion_tokens"].get<int>() <= 24);
  CHECK(j["usage"]["prompt_tokens"].get<int>() > 0);
}

TEST_CASE("streamed chat sends the role first then content deltas then finish_reason then DONE", "[llm][chat][streaming]") {
  Talkserve server;
  auto client = server.client();
  auto whole = post_ok(client, "/v1/chat/completions", greedy_chat(24));

  auto body = greedy_chat(24);
  body["stream"] = true;
  SseStream stream(client, "/v1/chat/completions", body);
  REQUIRE(stream.status() == 200);
  CHECK_THAT(stream.header("Content-Type").value_or(""), Catch::StartsWith("text/event-stream"));
  auto s = parse_stream(stream.read_all(), true);
  CHECK(s.done_last);
  REQUIRE_FALSE(s.chunks.empty());
  for (const auto& c : s.chunks) CHECK(c["object"] == "chat.completion.chunk");
  CHECK(s.chunks.front()["choices"][0]["delta"]["role"] == "assistant");
  CHECK(s.text == whole["choices"][0]["message"]["content"].get<std::string>());
  CHECK(s.finish_reason == whole["choices"][0]["finish_reason"].get<std::string>());
  // The finish_reason chunk is the last chunk.
  CHECK_FALSE(s.chunks.back()["choices"][0]["finish_reason"].is_null());
}

TEST_CASE("bad LLM requests get OpenAI-style errors", "[llm][errors]") {
  Talkserve server;
  auto client = server.client();

  {
    INFO("invalid JSON: 400 invalid_request_error");
    check_error(client.request("POST", "/v1/completions", "{\"model\": \"stories260K\", "),
                400, "invalid_request_error");
    check_error(client.request("POST", "/v1/chat/completions", "not json at all"), 400,
                "invalid_request_error");
  }
  {
    INFO("a JSON body that is not an object: 400");
    check_error(client.request("POST", "/v1/completions", "[1, 2, 3]"), 400,
                "invalid_request_error");
  }
  {
    INFO("unknown model: 404 model_not_found");
    auto body = greedy_completion(4);
    body["model"] = "gpt-17";
    auto res = client.post_json("/v1/completions", body);
    check_error(res, 404, {}, "gpt-17");
    CHECK(res.json()["error"]["code"] == "model_not_found");
    auto chat = greedy_chat(4);
    chat["model"] = "gpt-17";
    check_error(client.post_json("/v1/chat/completions", chat), 404);
  }
  {
    INFO("temperature -1: 400 naming the field");
    auto body = greedy_completion(4);
    body["temperature"] = -1;
    check_error(client.post_json("/v1/completions", body), 400, "invalid_request_error",
                "temperature");
  }
  {
    INFO("n = 2: 400 (only n = 1 is supported)");
    auto body = greedy_completion(4);
    body["n"] = 2;
    check_error(client.post_json("/v1/completions", body), 400, "invalid_request_error", "n");
  }
  {
    INFO("chat without messages: 400");
    json body{{"model", kModel}, {"max_tokens", 4}};
    check_error(client.post_json("/v1/chat/completions", body), 400, "invalid_request_error",
                "messages");
  }
  {
    INFO("GET on /v1/completions: 405");
    auto res = client.get("/v1/completions");
    check_error(res, 405);
    CHECK_THAT(res.header("Allow").value_or(""), Catch::Contains("POST"));
  }
  {
    INFO("the server keeps serving after bad requests");
    check_error(client.request("POST", "/v1/completions", "{"), 400);
    post_ok(client, "/v1/completions", greedy_completion(4));
  }
}

TEST_CASE("closing the socket mid-stream cancels the request", "[llm][cancellation]") {
  Talkserve server;
  auto client = server.client();
  const MetricLabels cancelled{{"finished_reason", "cancelled"}, {"model_name", kModel}};
  const double cancelled_before = server.metrics().value("talkserve_request_success_total", cancelled).value_or(0);

  // As long as the context allows (stories260K: 512 tokens; more is a 400
  // context_length_exceeded), so the generation is still running when the client leaves.
  json body{{"model", kModel}, {"prompt", kPrompt}, {"max_tokens", 480},
            {"temperature", 0}, {"ignore_eos", true},   {"stream", true}};
  {
    SseStream stream(client, "/v1/completions", body);
    INFO(server.diagnostics());
    REQUIRE(stream.status() == 200);
    REQUIRE(stream.next_data().has_value());
    REQUIRE(stream.next_data().has_value());
    stream.close();
  }
  MetricsText m;
  bool settled = poll_until(
      [&] {
        m = server.metrics();
        return m.value("talkserve_num_requests_running", {{"model_name", kModel}}) == 0 &&
               m.value("talkserve_request_success_total", cancelled).value_or(0) ==
                   cancelled_before + 1;
      },
      3s, 20ms);
  INFO("running " << m.value("talkserve_num_requests_running").value_or(-1) << ", cancelled "
                  << m.value("talkserve_request_success_total", cancelled).value_or(-1));
  CHECK(settled);
  CHECK(m.value("talkserve_in_flight_requests") == 0);
  // Its KV blocks went back too.
  CHECK(m.value("talkserve_kv_cache_usage_perc", {{"model_name", kModel}}).value_or(-1) == 0);
  CHECK(m.value("talkserve_kv_cache_used_bytes", {{"model_name", kModel}}).value_or(-1) == 0);
  CHECK(m.value("talkserve_kv_cache_bytes", {{"model_name", kModel}}).value_or(0) > 0);
  // And the server still serves.
  post_ok(client, "/v1/completions", greedy_completion(4));
}

TEST_CASE("8 concurrent greedy requests all get the same text", "[llm][batching]") {
  Talkserve server;
  auto client = server.client();
  const int n = 8;
  std::vector<std::future<HttpResponse>> futures;
  for (int i = 0; i < n; ++i) {
    futures.push_back(std::async(std::launch::async, [&client] {
      return client.post_json("/v1/completions", greedy_completion(40));
    }));
  }
  std::vector<std::string> texts;
  for (auto& f : futures) {
    auto res = f.get();
    INFO(res.body);
    REQUIRE(res.status == 200);
    texts.push_back(res.json()["choices"][0]["text"]);
  }
  const std::string golden = golden_continuation();
  for (const auto& t : texts) {
    INFO("text: [" << t << "]");
    CHECK(t == texts.front());
    CHECK(golden.rfind(t, 0) == 0);
  }
  CHECK(texts.front().size() >= 100);
}

TEST_CASE("concurrent streamed and non-streamed requests do not disturb each other",
          "[llm][batching][streaming]") {
  Talkserve server;
  auto client = server.client();
  auto stream_body = greedy_completion(40);
  stream_body["stream"] = true;
  std::vector<std::future<std::string>> futures;
  for (int i = 0; i < 6; ++i) {
    futures.push_back(std::async(std::launch::async, [&, i] {
      if (i % 2 == 0) {
        return client.post_json("/v1/completions", greedy_completion(40))
            .json()["choices"][0]["text"]
            .get<std::string>();
      }
      std::string text;
      for (const auto& d : sse_post(client, "/v1/completions", stream_body)) {
        if (d == "[DONE]") continue;
        auto j = json::parse(d);
        if (!j["choices"].empty()) text += j["choices"][0]["text"].get<std::string>();
      }
      return text;
    }));
  }
  std::vector<std::string> texts;
  for (auto& f : futures) texts.push_back(f.get());
  for (const auto& t : texts) CHECK(t == texts.front());
  CHECK(golden_continuation().rfind(texts.front(), 0) == 0);
}

TEST_CASE("rounds of short concurrent requests are all answered and the server stays up",
          "[llm][batching][stress]") {
  Talkserve server;
  auto client = server.client(10s);
  auto plain = greedy_completion(8);
  auto streamed = greedy_completion(8);
  streamed["stream"] = true;
  const std::string expected = post_ok(client, "/v1/completions", plain)["choices"][0]["text"];
  for (int round = 0; round < 20; ++round) {
    std::vector<std::future<std::string>> futures;
    for (int i = 0; i < 6; ++i) {
      futures.push_back(std::async(std::launch::async, [&, i]() -> std::string {
        try {
          if (i % 2 == 0) {
            auto res = client.post_json("/v1/completions", plain);
            if (res.status != 200) return "status " + std::to_string(res.status) + ": " + res.body;
            std::string text = res.json()["choices"][0]["text"];
            return text == expected ? "" : "text [" + text + "]";
          }
          std::string text;
          auto data = sse_post(client, "/v1/completions", streamed);
          if (data.empty() || data.back() != "[DONE]") return "stream without [DONE]";
          for (const auto& d : data) {
            if (d == "[DONE]") continue;
            auto j = json::parse(d);
            if (!j["choices"].empty()) text += j["choices"][0]["text"].get<std::string>();
          }
          return text == expected ? "" : "streamed text [" + text + "]";
        } catch (const std::exception& e) {
          return std::string(i % 2 == 0 ? "plain: " : "stream: ") + e.what();
        }
      }));
    }
    std::vector<std::string> problems;
    for (auto& f : futures) {
      auto p = f.get();
      if (!p.empty()) problems.push_back(p);
    }
    if (!problems.empty()) {
      std::string all;
      for (const auto& p : problems) all += p + "\n";
      FAIL_CHECK("round " << round << ":\n" << all);
      if (server.process().exited()) FAIL("talkserve died\n" << server.diagnostics());
      break;
    }
  }
  CHECK_FALSE(server.process().exited());
}

TEST_CASE("a backlog older than llm.max_queue_delay_ms sheds new completions with 503 overloaded",
          "[llm][shedding]") {
  // One sequence at a time and long generations: each request waits for all before it.
  Talkserve::Options o;
  o.startup_timeout = 60s;  // the talk pipeline's models load too
  o.args = {"--set", "llm.max_num_seqs=1", "--set", "llm.max_queue_delay_ms=200"};
  Talkserve server(o);
  auto client = server.client(120s);
  json long_one = greedy_completion(480);
  long_one["ignore_eos"] = true;
  const int backlog = 60;  // 28,800 tokens: seconds of generation one at a time
  std::vector<std::future<HttpResponse>> queued;
  for (int i = 0; i < backlog; ++i) {
    queued.push_back(std::async(std::launch::async, [&client, &long_one] {
      return client.post_json("/v1/completions", long_one);
    }));
  }
  // The backlog is in the engine's queue; give its oldest request time to pass the bound.
  REQUIRE(poll_until([&] {
    return server.metrics().value("talkserve_num_requests_waiting").value_or(0) >= 10;
  }, 30s, 5ms));
  std::this_thread::sleep_for(400ms);
  const auto shed = client.post_json("/v1/completions", greedy_completion(8));
  INFO(shed.body);
  check_error(shed, 503);
  CHECK(shed.json()["error"]["code"] == "overloaded");
  CHECK(shed.json()["error"]["message"].get<std::string>().find("llm.max_queue_delay_ms") !=
        std::string::npos);
  CHECK(shed.header("Retry-After") == "1");
#if TALKSERVE_ITEST_MODELS  // a tree with the talk pipeline
  // A talk turn would wait in the same queue for its reply: refused the same way, up front.
  const auto turn = client.post_json("/v1/talk", json{{"text", "Hello there"}});
  INFO(turn.body);
  check_error(turn, 503);
  CHECK(turn.json()["error"]["code"] == "overloaded");
  CHECK(turn.json()["error"]["message"].get<std::string>().find("llm.max_queue_delay_ms") !=
        std::string::npos);
  // So is a live session, before the upgrade: a 503 the client can retry, not a dead session.
  {
    talkserve::test::WsClient ws(server.port());
    CHECK(ws.handshake("/v1/stream", 10s));  // refused
    const auto& up = ws.upgrade_response();
    INFO(up.body());
    CHECK(up.result_int() == 503);
    CHECK(json::parse(up.body())["error"]["code"] == "overloaded");
  }
#endif

  // Admitted requests are never shed: each one answered 200 generated all its tokens; any
  // that arrived after the backlog formed got the same 503.
  int ok = 0, overloaded = 1;  // the request above
  for (auto& f : queued) {
    auto res = f.get();
    INFO(res.body);
    if (res.status == 200) {
      ++ok;
      CHECK(res.json()["usage"]["completion_tokens"] == 480);
    } else {
      check_error(res, 503);
      CHECK(res.json()["error"]["code"] == "overloaded");
      ++overloaded;
    }
  }
  CHECK(ok >= 10);
  // Every refusal is counted.
  CHECK(server.metrics()
            .value("talkserve_queue_rejected_total", {{"executor", "llm"}, {"reason", "overloaded"}})
            .value_or(-1) == overloaded);
  // With the backlog gone, requests are served again.
  CHECK(post_ok(client, "/v1/completions", greedy_completion(8))["choices"][0]["text"] != "");
}
