#pragma once
// Conversation sessions: the history the LLM sees (bounded in turns and tokens), the avatar and
// voice, and an idle TTL. A session id is created on the first turn and sent back by the
// client on the next ones. One turn runs at a time per session.
//
// Thread-safety: every method may be called from any thread.

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "talkserve/llm/chat_template.hpp"
#include "talkserve/sched/clock.hpp"

namespace talkserve::pipeline {

struct SessionConfig {
  std::chrono::seconds idle_ttl{1800};
  std::size_t max_sessions = 10000;
  std::size_t max_turns = 8;  // user+assistant pairs kept in the history
  void validate() const;      // throws std::invalid_argument naming the field
};

struct Session {
  std::string id;
  std::string voice;
  std::string avatar;
  std::vector<llm::ChatMessage> history;  // user/assistant turns, oldest first
  sched::Clock::time_point last_used{};
  bool busy = false;  // a turn is running
};

class SessionStore {
 public:
  SessionStore(SessionConfig config, sched::Clock& clock);

  // The session with `id`, or a new one when `id` is empty. nullopt when `id` is unknown or
  // expired. Expired sessions are dropped on the way; when the store is full the least
  // recently used session makes room.
  std::optional<Session> begin_turn(const std::string& id, std::string* error);
  // Appends the finished turn (bounded by max_turns) and releases the session.
  void end_turn(const std::string& id, const std::string& user, const std::string& assistant);
  // Releases the session without changing its history (failed or cancelled turn).
  void abort_turn(const std::string& id);
  std::size_t size() const;

 private:
  void expire_locked(sched::Clock::time_point now);
  std::string new_id();
  SessionConfig config_;
  sched::Clock& clock_;
  mutable std::mutex mutex_;
  std::map<std::string, Session, std::less<>> sessions_;
  std::uint64_t counter_ = 0;
};

}  // namespace talkserve::pipeline
