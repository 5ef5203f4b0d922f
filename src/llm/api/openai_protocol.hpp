#pragma once
// The OpenAI-compatible wire format of /v1/completions and /v1/chat/completions: parsing a
// request body into typed fields (every bad field is an ApiError naming it) and building the
// response objects and stream chunks. No I/O and no engine here, so all of it is unit-tested.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "talkserve/llm/chat_template.hpp"
#include "talkserve/llm/generation.hpp"
#include "talkserve/llm/sampling_params.hpp"
#include "talkserve/net/api_error.hpp"

namespace talkserve::llm::api {

using net::ApiError;
using net::error_json;

enum class Endpoint { completions, chat };

struct ParsedRequest {
  Endpoint endpoint = Endpoint::completions;
  std::string model;
  // completions: the prompt as text, or as token ids (an array of integers).
  std::optional<std::string> prompt_text;
  std::vector<int32_t> prompt_ids;
  // chat: the conversation.
  std::vector<ChatMessage> messages;
  SamplingParams params;
  bool max_tokens_given = false;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool echo = false;           // completions: prepend the prompt to the text
  // Logprobs as the caller asked for them: completions `logprobs: N`; chat `logprobs: true`
  // with `top_logprobs: N`.
  bool want_logprobs = false;
  int top_logprobs = 0;
  std::string user;
};

// Parses and validates a request body. `default_max_tokens` applies when the body has none.
// Throws ApiError(400) naming the field for malformed JSON, wrong types and bad values.
ParsedRequest parse_request(Endpoint endpoint, const std::string& body, int default_max_tokens);

const char* finish_reason_name(FinishReason reason);  // "stop" | "length" | ...

// Token-level logprobs for responses: texts come from the tokenizer.
struct TokenLogprobInfo {
  std::string token;
  float logprob = 0.0f;
  std::vector<std::pair<std::string, float>> top;
};

// Everything a finished request produced, for a non-streamed response.
struct CompletionResult {
  std::string text;
  FinishReason reason = FinishReason::stop;
  std::string message;  // for cancelled / error
  Usage usage;
  std::vector<TokenLogprobInfo> logprobs;
};

struct ResponseMeta {
  std::string id;       // "cmpl-..." / "chatcmpl-..."
  std::int64_t created = 0;
  std::string model;
};

// Bodies are serialised with dump_json(): token texts can be partial UTF-8 (byte-fallback
// pieces); invalid bytes become U+FFFD there, the exact bytes are in the "bytes" fields.
std::string dump_json(const nlohmann::json& j);

nlohmann::json usage_json(const Usage& usage);
// choices[].logprobs for each endpoint's shape.
nlohmann::json completion_logprobs_json(const std::vector<TokenLogprobInfo>& lp,
                                        std::size_t text_offset_base);
nlohmann::json chat_logprobs_json(const std::vector<TokenLogprobInfo>& lp);

// The complete (non-streamed) response body.
nlohmann::json completion_response(const ParsedRequest& req, const ResponseMeta& meta,
                                   const CompletionResult& result);

// One streamed chunk. `delta_text` may be empty; `finish` set on the last choice chunk.
// `first` marks the chat chunk that carries the assistant role.
nlohmann::json stream_chunk(const ParsedRequest& req, const ResponseMeta& meta,
                            const std::string& delta_text,
                            const std::vector<TokenLogprobInfo>& logprobs,
                            std::optional<FinishReason> finish, bool first);
// The final usage-only chunk (stream_options.include_usage): "choices": [].
nlohmann::json stream_usage_chunk(const ParsedRequest& req, const ResponseMeta& meta,
                                  const Usage& usage);

// A random id with the endpoint's prefix.
std::string make_response_id(Endpoint endpoint);

}  // namespace talkserve::llm::api
