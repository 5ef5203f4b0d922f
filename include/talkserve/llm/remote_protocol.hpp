#pragma once
// The pure parts of talking to a remote OpenAI-compatible LLM server (vLLM, llama.cpp's
// server, another talkserve): the upstream URL, the server-sent-event framing of a streamed
// chat completion, the retry schedule and how upstream statuses reach our clients. No I/O
// here, so every rule is unit-tested exactly (RemoteChatBackend does the networking).
//
// Thread-safety: free functions are pure; an SseParser is one stream's state (one thread).

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "talkserve/llm/chat_template.hpp"

namespace talkserve::llm::remote {

// "http[s]://host[:port][/base]". The chat route is {base}/v1/chat/completions, so the base
// must not end in /v1 (a copy-pasted OpenAI SDK base_url would otherwise hit /v1/v1/...).
struct UpstreamUrl {
  bool tls = false;
  std::string host;       // without brackets for an IPv6 literal
  std::uint16_t port = 0;
  std::string base_path;  // "" or "/prefix" (no trailing slash)

  // "http://host:port" as written in logs and error messages (never any credentials).
  std::string origin() const;
  // The Host header: host, plus ":port" when it is not the scheme's default.
  std::string host_header() const;
  // base_path + path ("/v1/chat/completions").
  std::string target(std::string_view path) const;
};

// Throws std::invalid_argument saying what is wrong (message without the key name).
UpstreamUrl parse_upstream_url(std::string_view url);

// Incremental text/event-stream decoder: feed it bytes as they arrive (any split, CRLF or LF
// line ends); it returns the data of each completed event (its `data:` lines joined by '\n').
// Comments (": ping") and other fields (event:, id:, retry:) are ignored. An event larger
// than `max_event_bytes` throws std::length_error (a broken or hostile upstream must not
// grow our memory without bound).
class SseParser {
 public:
  explicit SseParser(std::size_t max_event_bytes = 1 << 20) : max_event_bytes_(max_event_bytes) {}
  std::vector<std::string> feed(std::string_view bytes);

 private:
  void take_line(std::string_view line, std::vector<std::string>& out);
  std::size_t max_event_bytes_;
  std::string line_;
  std::string data_;
  bool has_data_ = false;
  bool skip_lf_ = false;  // the previous chunk ended in '\r'; a leading '\n' belongs to it
};

// Exponential backoff with jitter: retry n (1-based) waits a uniformly drawn time in
// [d/2, d], d = min(cap, base * 2^(n-1)). `unit` is a draw from [0, 1) (injected so tests
// are exact). Jitter spreads the retries of many turns that failed at the same moment.
std::chrono::milliseconds backoff_delay(int retry, std::chrono::milliseconds base,
                                        std::chrono::milliseconds cap, double unit);

// A Retry-After header: delta-seconds ("120") or an HTTP-date ("Wed, 21 Oct 2015 07:28:00
// GMT", relative to `now`). nullopt when unparseable; a date in the past is 0.
std::optional<std::chrono::milliseconds> parse_retry_after(
    std::string_view value, std::chrono::system_clock::time_point now);

// Statuses worth another attempt before any text was delivered: overload and gateway errors.
bool retryable_status(int upstream_status);

// The status our client gets for an upstream error status. Request problems the client can
// fix (400, 413, 422: e.g. the conversation is too long for the upstream's context) pass
// through; 401/403/404 mean *this server's* upstream settings are wrong (key, model), which
// is not the client's fault: 502. Overload (429, 503) is 503; 504 stays 504; other 5xx 502.
int client_status_for(int upstream_status);

// The message of an OpenAI-style error body ({"error": {"message": ...}} or {"error": "..."}
// or {"message": ...}); else the body itself, trimmed and cut to 300 bytes.
std::string upstream_error_message(std::string_view body);

// The remote tokenizer is unknown, so prompt size is estimated: one token per 3 bytes of
// content (English BPE vocabularies average ~4; a tiny vocabulary far less per token, so
// this overestimates for big models and keeps history trimming on the safe side), plus 4
// tokens per message and 3 for the assistant prompt (the chat template's markers).
int estimate_prompt_tokens(const std::vector<ChatMessage>& messages);

}  // namespace talkserve::llm::remote
