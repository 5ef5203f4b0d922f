#pragma once
// The LLM as other stages use it in-process (the talk pipeline): a chat turn in, text deltas
// out as the engine produces them, on the same engine and KV cache as the HTTP routes.
//
// Thread-safety: every method may be called from any thread. Callbacks run on the engine
// thread: they must be short and must not block (post to your own executor).

#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "talkserve/llm/chat_template.hpp"
#include "talkserve/llm/generation.hpp"

namespace talkserve::llm {

struct ChatOptions {
  int max_tokens = 128;
  float temperature = 0.0f;            // 0 = greedy (reproducible replies, cacheable clips)
  std::optional<std::uint64_t> seed;
  int priority = 1;
};

struct ChatOutcome {
  FinishReason reason = FinishReason::stop;
  std::string message;  // why, for cancelled / error
  Usage usage;
  // For reason == error: the HTTP status the caller's client should get (a remote backend's
  // upstream trouble: 502, 503, 504, or a passed-through 400); 0 = an internal error (500).
  int status = 0;
};

// The conversation does not fit the model (too long) or the backend is not ready / stopping.
class ChatRefused : public std::runtime_error {
 public:
  ChatRefused(int status, const std::string& what) : std::runtime_error(what), status(status) {}
  int status;  // 400 (does not fit) or 503 (not ready, stopping, queue full)
};

class ChatBackend {
 public:
  virtual ~ChatBackend() = default;
  virtual bool chat_ready() const = 0;
  virtual std::string model_name() const = 0;
  virtual int context_length() const = 0;
  // Tokens `messages` take in the prompt (chat template included).
  virtual int count_prompt_tokens(const std::vector<ChatMessage>& messages) const = 0;
  // Starts a reply. `on_text` gets each text delta (whole UTF-8 characters), then `on_done`
  // exactly once. Throws ChatRefused (nothing is called then).
  virtual RequestId chat(const std::vector<ChatMessage>& messages, const ChatOptions& options,
                         std::function<void(std::string)> on_text,
                         std::function<void(ChatOutcome)> on_done) = 0;
  virtual void cancel(RequestId id) = 0;
  // Load shedding: true while requests at `priority` or above have waited for the LLM longer
  // than its bound (llm.max_queue_delay_ms), so a caller can refuse new work (503) before it
  // spends anything on it. Backends without a queue of their own never are.
  virtual bool overloaded(int priority) const {
    (void)priority;
    return false;
  }
};

}  // namespace talkserve::llm
