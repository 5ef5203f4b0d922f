#pragma once
// The talk pipeline's LLM stage on a remote OpenAI-compatible server (vLLM, llama.cpp's
// server, another talkserve): each chat() is a POST {base}/v1/chat/completions with
// stream: true, read as server-sent events on a Boost.Beast HTTP/1.1 client (http:// or
// https:// with peer verification and SNI). All sockets live on one I/O thread owned by the
// backend; the model work happens upstream, so one thread carries many streams.
//
// Failures before the first text delta are retried with exponential backoff and jitter
// (connect errors, timeouts, 429/502/503/504, honouring Retry-After); once text went out a
// retry would repeat it, so a failure then ends the reply with an error. cancel() closes the
// socket: the upstream sees the disconnect and stops generating.
//
// Connections are kept alive between replies (HTTP/1.1 persistent connections): a reply that
// ended cleanly leaves its connection idle for the next chat(), which then skips the TCP
// connect and TLS handshake (round trips to a remote fleet). An idle connection is used for at
// most `keepalive` and is dropped earlier if the upstream closed it; one the upstream closed
// just as it was reused fails before any response and the request goes on a new connection,
// without counting as a retry. A cancelled or failed reply's connection is never reused.
//
// Thread-safety: every public method may be called from any thread. on_text / on_done run on
// the backend's I/O thread: they must be short and must not block (post to your executor).

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "talkserve/llm/chat_backend.hpp"

namespace talkserve::obs {
class MetricsRegistry;
}

namespace talkserve::llm {

struct RemoteChatConfig {
  std::string url;            // http[s]://host[:port][/base]
  std::string api_key;        // sent as "Authorization: Bearer"; "" = none
  std::string model;          // the "model" of every request
  std::chrono::milliseconds connect_timeout{5'000};  // TCP connect + TLS handshake, per attempt
  std::chrono::milliseconds timeout{30'000};         // request sent -> response head
  std::chrono::milliseconds idle_timeout{30'000};    // between two chunks of the stream
  int max_retries = 2;                               // attempts after the first
  std::chrono::milliseconds backoff{200};            // first retry's delay (doubles)
  std::chrono::milliseconds max_backoff{5'000};      // cap, and the longest Retry-After obeyed
  std::string ca_file;        // PEM CA bundle to trust instead of the system store
  // How long an idle connection may be reused (keep it under the upstream's own keep-alive
  // timeout: uvicorn's, under vLLM, is 5 s); 0 = a new connection per request.
  std::chrono::milliseconds keepalive{4'000};
  std::size_t max_idle_connections = 16;  // idle connections kept; the oldest go first
  int context_length = 4096;  // the upstream model's context (tokens)
};

class RemoteChatBackend final : public ChatBackend {
 public:
  // Throws std::invalid_argument for a bad url or an unreadable ca_file. `metrics` (may be
  // null) must outlive the backend. Starts the I/O thread.
  RemoteChatBackend(RemoteChatConfig config, obs::MetricsRegistry* metrics);
  ~RemoteChatBackend() override;
  RemoteChatBackend(const RemoteChatBackend&) = delete;
  RemoteChatBackend& operator=(const RemoteChatBackend&) = delete;

  // GET {base}/v1/models (one attempt, connect_timeout + timeout): throws std::runtime_error
  // naming the upstream when it is unreachable, refuses (e.g. a wrong key) or does not list
  // `model`. Blocks the caller; for start-up.
  void probe();

  // Replies in flight finish with "cancelled"; new chats are refused (503). Joins the thread.
  void stop();

  bool chat_ready() const override;
  std::string model_name() const override;
  int context_length() const override;
  // An estimate (the remote tokenizer is unknown): remote::estimate_prompt_tokens.
  int count_prompt_tokens(const std::vector<ChatMessage>& messages) const override;
  // Never throws for upstream trouble: that arrives as on_done(error) with ChatOutcome::status
  // (the status for our client) and a message naming the upstream. Throws ChatRefused(503)
  // after stop().
  RequestId chat(const std::vector<ChatMessage>& messages, const ChatOptions& options,
                 std::function<void(std::string)> on_text,
                 std::function<void(ChatOutcome)> on_done) override;
  void cancel(RequestId id) override;

  // "http://host:port" for messages.
  std::string upstream() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace talkserve::llm
