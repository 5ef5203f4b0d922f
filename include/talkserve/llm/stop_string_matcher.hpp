#pragma once
// Finds stop strings in streamed text and withholds them from the client.
//
// Text that could be the start of a stop string is held back until it either completes a stop
// string (the text before it is emitted, the stop string and everything after are dropped) or
// can no longer match (it is emitted). Matching is on bytes; a stop string that is valid UTF-8
// can only start at a character boundary, so held-back text never splits a character.
//
// Thread-safety: one instance per request, one thread at a time.

#include <string>
#include <vector>

namespace talkserve::llm {

class StopStringMatcher {
 public:
  explicit StopStringMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {}

  struct Result {
    std::string text;    // safe to emit now
    bool stopped = false;
    std::string matched;  // the stop string, when stopped
  };
  // Feeds a text delta. After a stop, further calls return nothing.
  Result push(const std::string& delta);
  // End of the stream without a stop: releases the held-back text.
  std::string flush();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

}  // namespace talkserve::llm
