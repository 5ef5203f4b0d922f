#pragma once
// Shared helpers for the engine tests: an event collector and request builders.

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "talkserve/llm/detokenizer.hpp"
#include "talkserve/llm/engine_core.hpp"

namespace talkserve::llm::testing {

// Records every event per request. Thread-safe (the threaded-engine tests read it from the
// test thread).
struct EventLog {
  struct Stream {
    std::vector<int32_t> tokens;
    std::string text;
    std::vector<GeneratedTokenLogprobs> logprobs;
    std::optional<FinishedEvent> finished;
    int events_after_finish = 0;
  };
  mutable std::mutex mutex;
  std::map<RequestId, Stream> streams;
  std::vector<RequestId> finish_order;

  GenerationCallback callback() {
    return [this](GenerationEvent&& ev) {
      std::lock_guard lock(mutex);
      if (auto* t = std::get_if<TokenEvent>(&ev)) {
        Stream& s = streams[t->id];
        if (s.finished) ++s.events_after_finish;
        s.tokens.insert(s.tokens.end(), t->token_ids.begin(), t->token_ids.end());
        s.text += t->text;
        s.logprobs.insert(s.logprobs.end(), t->logprobs.begin(), t->logprobs.end());
      } else {
        auto& f = std::get<FinishedEvent>(ev);
        Stream& s = streams[f.id];
        if (s.finished) ++s.events_after_finish;
        finish_order.push_back(f.id);
        s.finished = std::move(f);
        finished_cv.notify_all();
      }
    };
  }
  // Waits until `n` requests have finished. The timeout only turns a hang into a failure.
  bool wait_finished(std::size_t n, std::chrono::seconds timeout = std::chrono::seconds(30)) {
    std::unique_lock lock(mutex);
    return finished_cv.wait_for(lock, timeout, [&] { return finish_order.size() >= n; });
  }
  std::condition_variable finished_cv;
  Stream get(RequestId id) const {
    std::lock_guard lock(mutex);
    auto it = streams.find(id);
    return it == streams.end() ? Stream{} : it->second;
  }
};

inline GenerationRequest greedy_request(std::vector<int32_t> prompt, int max_tokens, EventLog& log,
                                        int priority = 1) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.params.temperature = 0.0f;
  r.params.max_tokens = max_tokens;
  r.priority = priority;
  r.on_event = log.callback();
  return r;
}

inline std::vector<int32_t> make_prompt(int len, int salt, int vocab) {
  std::vector<int32_t> p;
  for (int i = 0; i < len; ++i) p.push_back((i * 7 + salt * 13 + 1) % vocab);
  return p;
}

inline int run_until_idle(EngineCore& core, int max_steps = 100000) {
  int steps = 0;
  while (core.has_work() && steps < max_steps) {
    core.step();
    ++steps;
  }
  return steps;
}

// Token t reads as one letter, so stop strings can be placed on known token boundaries.
class LetterDetokenizer final : public IncrementalDetokenizer {
 public:
  static char letter(int32_t t) { return static_cast<char>('a' + t % 26); }
  std::string push(int32_t token) override { return std::string(1, letter(token)); }
  std::string finish() override { return {}; }
};

inline DetokenizerFactory letter_detokenizer() {
  return [](std::span<const int32_t>) { return std::make_unique<LetterDetokenizer>(); };
}

}  // namespace talkserve::llm::testing
