#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "llm/api/openai_protocol.hpp"

using namespace talkserve::llm;
using namespace talkserve::llm::api;
using nlohmann::json;

namespace {

ApiError parse_error(Endpoint ep, const std::string& body) {
  try {
    parse_request(ep, body, 16);
  } catch (const ApiError& e) {
    return e;
  }
  FAIL("expected an ApiError for " << body);
  return ApiError(0, "");
}

}  // namespace

TEST_CASE("completions: a full request maps onto sampling parameters", "[llm][api]") {
  auto r = parse_request(Endpoint::completions, R"({
    "model": "m", "prompt": "Once upon", "max_tokens": 7, "temperature": 0,
    "top_p": 0.5, "top_k": 3, "seed": 42, "stop": ["\n", "END"], "presence_penalty": 0.5,
    "frequency_penalty": -0.5, "repetition_penalty": 1.1, "ignore_eos": true,
    "stream": true, "stream_options": {"include_usage": true}, "logprobs": 2, "echo": true})",
                         16);
  CHECK(r.model == "m");
  REQUIRE(r.prompt_text);
  CHECK(*r.prompt_text == "Once upon");
  CHECK(r.params.max_tokens == 7);
  CHECK(r.max_tokens_given);
  CHECK(r.params.temperature == 0.0f);
  CHECK(r.params.top_p == 0.5f);
  CHECK(r.params.top_k == 3);
  CHECK(r.params.seed == 42u);
  CHECK(r.params.stop == std::vector<std::string>{"\n", "END"});
  CHECK(r.params.presence_penalty == 0.5f);
  CHECK(r.params.frequency_penalty == -0.5f);
  CHECK(r.params.repetition_penalty == Approx(1.1f));
  CHECK(r.params.ignore_eos);
  CHECK(r.stream);
  CHECK(r.include_usage);
  CHECK(r.want_logprobs);
  CHECK(r.top_logprobs == 2);
  REQUIRE(r.params.logprobs);
  CHECK(*r.params.logprobs == 2);
  CHECK(r.echo);
}

TEST_CASE("completions: defaults and prompt forms", "[llm][api]") {
  auto r = parse_request(Endpoint::completions, R"({"prompt": "x"})", 33);
  CHECK(r.params.max_tokens == 33);
  CHECK_FALSE(r.max_tokens_given);
  CHECK(r.params.temperature == 1.0f);
  CHECK_FALSE(r.stream);
  CHECK_FALSE(r.want_logprobs);

  auto ids = parse_request(Endpoint::completions, R"({"prompt": [1, 403, 2]})", 16);
  CHECK_FALSE(ids.prompt_text);
  CHECK(ids.prompt_ids == std::vector<int32_t>{1, 403, 2});
  auto nested = parse_request(Endpoint::completions, R"({"prompt": [[5, 6]]})", 16);
  CHECK(nested.prompt_ids == std::vector<int32_t>{5, 6});
  auto one = parse_request(Endpoint::completions, R"({"prompt": ["hi"]})", 16);
  CHECK(*one.prompt_text == "hi");
  auto stop = parse_request(Endpoint::completions, R"({"prompt": "x", "stop": "."})", 16);
  CHECK(stop.params.stop == std::vector<std::string>{"."});
}

TEST_CASE("every bad field is a 400 naming it", "[llm][api]") {
  struct Case {
    Endpoint ep;
    const char* body;
    const char* param;
  };
  const Case cases[] = {
      {Endpoint::completions, R"({"prompt": "x", "temperature": -1})", "temperature"},
      {Endpoint::completions, R"({"prompt": "x", "temperature": "hot"})", "temperature"},
      {Endpoint::completions, R"({"prompt": "x", "top_p": 0})", "top_p"},
      {Endpoint::completions, R"({"prompt": "x", "max_tokens": 0})", "max_tokens"},
      {Endpoint::completions, R"({"prompt": "x", "max_tokens": 1.5})", "max_tokens"},
      {Endpoint::completions, R"({"prompt": "x", "n": 2})", "n"},
      {Endpoint::completions, R"({"prompt": "x", "stop": [""]})", "stop"},
      {Endpoint::completions, R"({"prompt": "x", "stop": 5})", "stop"},
      {Endpoint::completions, R"({"prompt": "x", "logprobs": 21})", "logprobs"},
      {Endpoint::completions, R"({"prompt": "x", "stream_options": {"include_usage": true}})",
       "stream_options"},
      {Endpoint::completions, R"({"prompt": ["a", "b"]})", "prompt"},
      {Endpoint::completions, R"({"prompt": []})", "prompt"},
      {Endpoint::completions, R"({"prompt": [-1]})", "prompt"},
      {Endpoint::completions, R"({"max_tokens": 3})", "prompt"},
      {Endpoint::completions, R"({"prompt": "x", "presence_penalty": 3})", "presence_penalty"},
      {Endpoint::chat, R"({"model": "m"})", "messages"},
      {Endpoint::chat, R"({"messages": []})", "messages"},
      {Endpoint::chat, R"({"messages": [{"content": "hi"}]})", "messages[0].role"},
      {Endpoint::chat, R"({"messages": [{"role": "wizard", "content": "hi"}]})",
       "messages[0].role"},
      {Endpoint::chat,
       R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]})",
       "messages[0].content"},
      {Endpoint::chat, R"({"messages": [{"role": "user", "content": "x"}], "tools": []})",
       "tools"},
      {Endpoint::chat, R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})",
       "top_logprobs"},
      {Endpoint::chat,
       R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}})",
       "response_format"},
  };
  for (const auto& c : cases) {
    INFO(c.body);
    ApiError e = parse_error(c.ep, c.body);
    CHECK(e.status == 400);
    CHECK(e.type == "invalid_request_error");
    CHECK(e.param == c.param);
    CHECK(std::string(e.what()).find(c.param) != std::string::npos);
  }
}

TEST_CASE("malformed JSON and non-object bodies are 400", "[llm][api]") {
  for (const char* body : {"{", "", "[1,2]", "\"text\"", "{\"prompt\": \"x\",}"}) {
    INFO(body);
    ApiError e = parse_error(Endpoint::completions, body);
    CHECK(e.status == 400);
    auto j = json::parse(error_json(e));
    CHECK(j["error"]["type"] == "invalid_request_error");
    CHECK(j["error"]["message"].get<std::string>().size() > 0);
  }
}

TEST_CASE("chat: messages, content parts and max_completion_tokens", "[llm][api]") {
  auto r = parse_request(Endpoint::chat, R"({"messages": [
      {"role": "developer", "content": "be brief"},
      {"role": "user", "content": [{"type": "text", "text": "he"}, {"type": "text", "text": "llo"}]},
      {"role": "assistant", "content": null}],
      "max_tokens": 5, "max_completion_tokens": 9, "logprobs": true, "top_logprobs": 3})",
                         16);
  REQUIRE(r.messages.size() == 3);
  CHECK(r.messages[0].role == "system");
  CHECK(r.messages[1].content == "hello");
  CHECK(r.messages[2].content.empty());
  CHECK(r.params.max_tokens == 9);
  CHECK(r.want_logprobs);
  CHECK(r.top_logprobs == 3);
}

TEST_CASE("response and chunk shapes follow the OpenAI API", "[llm][api]") {
  ResponseMeta meta{"cmpl-1", 1700000000, "stories260K"};
  auto req = parse_request(Endpoint::completions, R"({"prompt": "Hi", "echo": true})", 16);
  CompletionResult res;
  res.text = " there";
  res.reason = FinishReason::length;
  res.usage = {3, 2, 0};
  json body = completion_response(req, meta, res);
  CHECK(body["object"] == "text_completion");
  CHECK(body["choices"][0]["text"] == "Hi there");
  CHECK(body["choices"][0]["finish_reason"] == "length");
  CHECK(body["usage"]["total_tokens"] == 5);

  auto chat = parse_request(Endpoint::chat,
                            R"({"messages": [{"role": "user", "content": "x"}], "stream": true,
                                "stream_options": {"include_usage": true}})",
                            16);
  meta.id = "chatcmpl-1";
  json first = stream_chunk(chat, meta, "", {}, std::nullopt, true);
  CHECK(first["object"] == "chat.completion.chunk");
  CHECK(first["choices"][0]["delta"]["role"] == "assistant");
  CHECK(first["choices"][0]["delta"]["content"] == "");
  CHECK(first["choices"][0]["finish_reason"].is_null());
  CHECK(first["usage"].is_null());
  json mid = stream_chunk(chat, meta, "abc", {}, std::nullopt, false);
  CHECK_FALSE(mid["choices"][0]["delta"].contains("role"));
  CHECK(mid["choices"][0]["delta"]["content"] == "abc");
  json last = stream_chunk(chat, meta, "", {}, FinishReason::stop, false);
  CHECK(last["choices"][0]["delta"] == json::object());
  CHECK(last["choices"][0]["finish_reason"] == "stop");
  json usage = stream_usage_chunk(chat, meta, Usage{4, 6, 2});
  CHECK(usage["choices"].empty());
  CHECK(usage["usage"]["total_tokens"] == 10);
  CHECK(usage["usage"]["prompt_tokens_details"]["cached_tokens"] == 2);
}

TEST_CASE("logprobs shapes, and partial UTF-8 token bytes survive serialisation", "[llm][api]") {
  std::vector<TokenLogprobInfo> lp = {{"He", -0.5f, {{"He", -0.5f}, {"She", -1.5f}}},
                                      {"\xE2\x82", -0.1f, {}}};
  json c = completion_logprobs_json(lp, 10);
  CHECK(c["tokens"][0] == "He");
  CHECK(c["text_offset"][1] == 12);
  CHECK(c["top_logprobs"][0]["She"] == Approx(-1.5));
  json chat = chat_logprobs_json(lp);
  CHECK(chat["content"][1]["bytes"] == json::array({0xE2, 0x82}));
  std::string text = dump_json(chat);  // must not throw on the broken sequence
  CHECK(json::parse(text)["content"][0]["top_logprobs"][1]["token"] == "She");
}

TEST_CASE("response ids are unique and prefixed", "[llm][api]") {
  auto a = make_response_id(Endpoint::chat);
  auto b = make_response_id(Endpoint::chat);
  CHECK(a.rfind("chatcmpl-", 0) == 0);
  CHECK(make_response_id(Endpoint::completions).rfind("cmpl-", 0) == 0);
  CHECK(a != b);
}
