#pragma once
// Typed requests and stream events between the LLM engine and its callers.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "talkserve/llm/sampler.hpp"
#include "talkserve/llm/sampling_params.hpp"
#include "talkserve/llm/sequence.hpp"
#include "talkserve/sched/clock.hpp"

namespace talkserve::llm {

using RequestId = std::uint64_t;

enum class FinishReason { stop, length, cancelled, error };
// "stop" | "length" | "cancelled" | "error" (the OpenAI-style spelling).
const char* to_string(FinishReason reason);

struct Usage {
  int prompt_tokens = 0;
  int completion_tokens = 0;
  int cached_prompt_tokens = 0;  // prompt tokens served from the prefix cache at admission
};

// Seconds on the engine's clock. Latencies of a request that produced no token stay empty.
struct RequestTiming {
  double queue_time = 0.0;                 // submit -> first scheduled
  std::optional<double> time_to_first_token;  // submit -> first token sampled
  std::vector<double> inter_token_latencies;  // between consecutive generated tokens
  double e2e_latency = 0.0;                // submit -> finished
  int num_preemptions = 0;
};

struct GeneratedTokenLogprobs {
  float logprob = 0.0f;            // of the generated token (raw model distribution)
  std::vector<TokenLogprob> top;   // top-n alternatives
};

// New tokens of one request. Text is a delta of whole UTF-8 characters; it can be empty
// (a character still incomplete, text held back as a possible stop string, a stop token).
struct TokenEvent {
  RequestId id = 0;
  std::vector<int32_t> token_ids;
  std::string text;
  std::vector<GeneratedTokenLogprobs> logprobs;  // one per token id, when requested
};

// Always the last event of an accepted request, exactly once.
struct FinishedEvent {
  RequestId id = 0;
  FinishReason reason = FinishReason::stop;
  std::string message;                   // why, for "cancelled" and "error"
  std::optional<int32_t> stop_token_id;  // the stop token, when it ended the request
  std::string stop_string;               // the stop string, when it ended the request
  Usage usage;
  RequestTiming timing;
};

using GenerationEvent = std::variant<TokenEvent, FinishedEvent>;

// Invoked on the engine thread: it must be cheap and must not block (post to your strand).
// It must not call Engine::stop(). Exceptions it throws are caught and dropped.
using GenerationCallback = std::function<void(GenerationEvent&&)>;

struct GenerationRequest {
  std::vector<int32_t> prompt;  // token ids, BOS included if the model wants one
  SamplingParams params;
  int priority = static_cast<int>(Priority::standard);  // 0 vip, 1 standard, 2 batch
  std::optional<sched::Clock::time_point> deadline;     // cancelled when passed
  GenerationCallback on_event;
};

}  // namespace talkserve::llm
