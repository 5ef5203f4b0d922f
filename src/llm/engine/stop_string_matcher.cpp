#include "talkserve/llm/stop_string_matcher.hpp"

#include <algorithm>

namespace talkserve::llm {

StopStringMatcher::Result StopStringMatcher::push(const std::string& delta) {
  Result r;
  if (stopped_) return r;
  if (stops_.empty()) {
    r.text = delta;
    return r;
  }
  pending_ += delta;
  // Earliest match wins; for equal starts, the longest stop string.
  std::size_t best = std::string::npos;
  const std::string* best_stop = nullptr;
  for (const auto& s : stops_) {
    const std::size_t pos = pending_.find(s);
    if (pos != std::string::npos &&
        (pos < best || (pos == best && s.size() > best_stop->size()))) {
      best = pos;
      best_stop = &s;
    }
  }
  if (best != std::string::npos) {
    r.text = pending_.substr(0, best);
    r.stopped = true;
    r.matched = *best_stop;
    stopped_ = true;
    pending_.clear();
    return r;
  }
  // Hold back the longest suffix of pending_ that is a proper prefix of some stop string.
  std::size_t hold = 0;
  for (const auto& s : stops_) {
    const std::size_t max_len = std::min(s.size() - 1, pending_.size());
    for (std::size_t len = max_len; len > hold; --len) {
      if (pending_.compare(pending_.size() - len, len, s, 0, len) == 0) {
        hold = len;
        break;
      }
    }
  }
  r.text = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return r;
}

std::string StopStringMatcher::flush() {
  std::string out;
  if (!stopped_) out.swap(pending_);
  return out;
}

}  // namespace talkserve::llm
