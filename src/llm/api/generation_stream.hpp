#pragma once
// Turning engine events (on the engine thread) into HTTP answers:
//   ResultCollector   gathers a whole generation for a non-streamed response;
//   GenerationStream  writes server-sent events into a bounded StreamWriter.
//
// Back-pressure without stalling the batch: the engine never waits for one slow client. When
// the writer's queue is full, new text is coalesced into one pending delta (bounded by the
// request's max_tokens) and sent as a single chunk once the client has read half the queue.

#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "openai_protocol.hpp"
#include "talkserve/llm/generation.hpp"
#include "talkserve/llm/tokenizer.hpp"
#include "talkserve/net/stream_writer.hpp"

namespace talkserve::llm::api {

// Token texts for logprobs. Not thread-safe: one per request, used on the engine thread.
class LogprobTexts {
 public:
  LogprobTexts(const Tokenizer& tokenizer, int32_t prev_id) : tok_(tokenizer), prev_(prev_id) {}
  void append(const TokenEvent& ev, std::vector<TokenLogprobInfo>& out);

 private:
  std::string piece(int32_t id) const;
  const Tokenizer& tok_;
  int32_t prev_;
};

struct CollectedResult {
  CompletionResult result;
};

// Thread-safety: on_event() from the engine thread, set_done() from the handler, in either
// order: `done` is called exactly once, when both the result and `done` are there.
class ResultCollector {
 public:
  using Done = std::function<void(std::shared_ptr<CollectedResult>)>;
  ResultCollector(const Tokenizer& tokenizer, bool want_logprobs, int32_t prev_id);
  void set_done(Done done);
  void on_event(GenerationEvent&& ev);

 private:
  std::shared_ptr<CollectedResult> out_ = std::make_shared<CollectedResult>();
  bool want_logprobs_;
  LogprobTexts texts_;
  std::mutex mutex_;
  bool finished_ = false;
  Done done_;
};

// Thread-safety: on_event() from the engine thread, flush() from the I/O strand (on_drain),
// start()/fail() from the handler; all serialised by one mutex.
class GenerationStream {
 public:
  GenerationStream(std::shared_ptr<net::StreamWriter> writer, ParsedRequest req,
                   ResponseMeta meta, const Tokenizer& tokenizer, int32_t prev_id,
                   std::shared_ptr<void> hold);

  // Queues the opening chunk (chat: the assistant role; completions with echo: the prompt).
  void start();
  void on_event(GenerationEvent&& ev);
  // Ends the stream with an error event (the request never reached the engine).
  void fail(const ApiError& error);
  // Pushes what is pending as far as the writer's queue allows.
  void flush();
  bool finished() const;

 private:
  void flush_locked();
  void finish_locked(const FinishedEvent& ev);

  std::shared_ptr<net::StreamWriter> writer_;
  ParsedRequest req_;
  ResponseMeta meta_;
  LogprobTexts texts_;
  std::shared_ptr<void> hold_;  // released when the generation ends

  mutable std::mutex mutex_;
  std::string pending_text_;
  std::vector<TokenLogprobInfo> pending_logprobs_;
  bool opened_ = false;     // the opening chunk was formatted
  bool finished_ = false;   // the engine's FinishedEvent (or a failure) arrived
  std::deque<std::string> outbox_;  // formatted events not yet accepted by the writer
  bool closing_ = false;    // outbox_ ends the stream
};

}  // namespace talkserve::llm::api
