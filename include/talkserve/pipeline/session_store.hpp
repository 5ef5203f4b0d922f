#pragma once
// Conversation sessions: the history the LLM sees (bounded in turns and tokens), the avatar and
// voice, and an idle TTL. A session id is created on the first turn and sent back by the
// client on the next ones. One turn runs at a time per session.
//
// Replicas behind one load balancer share sessions through a SessionTier (Redis): a session
// started on one replica continues on another. The local map stays the first copy; the tier
// holds the latest finished turn of every replica (a version counts the turns, the higher copy
// wins) and a per-session turn lock, so that two replicas never run turns of one session at
// once. A tier that cannot be reached is skipped: the replica carries on with its local copy.
//
// Thread-safety: every method may be called from any thread. begin_turn, end_turn and
// abort_turn may block on the tier for up to its timeout: call them off the I/O threads.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
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
  std::string voice;   // the last turn's voice ("" = the server's default)
  std::string avatar;  // the last turn's avatar id
  std::vector<llm::ChatMessage> history;  // user/assistant turns, oldest first
  std::uint64_t version = 0;              // finished turns; the shared copy with more wins
  sched::Clock::time_point last_used{};
  bool busy = false;       // a turn is running
  std::string turn_token;  // the running turn's hold on the shared lock
};

// A finished turn, as end_turn records it.
struct TurnRecord {
  std::string user;
  std::string assistant;
  std::string voice;   // "" keeps the session's
  std::string avatar;  // "" keeps the session's
};

// Whether `id` has the form new_id() gives ("sess_" and 32 lowercase hex digits). Other ids are
// refused as unknown before any lookup.
bool is_session_id(std::string_view id);

// The session's shared form (JSON: version, voice, avatar, history); parse returns nullopt for
// a record it cannot read (written by an incompatible version, or corrupt).
std::string serialize_session(const Session& s);
std::optional<Session> parse_session(const std::string& id, std::string_view record);

// Sessions shared between replicas. Implementations never throw: `unavailable` (or false)
// means the tier could not be asked and the caller carries on locally.
class SessionTier {
 public:
  enum class Lock { acquired, busy, unavailable };
  enum class Load { found, absent, unavailable };
  virtual ~SessionTier() = default;
  // Takes the session's turn lock for `token` (it expires by itself if the replica dies).
  virtual Lock lock(const std::string& id, const std::string& token) = 0;
  // Releases it if `token` still holds it.
  virtual void unlock(const std::string& id, const std::string& token) = 0;
  virtual Load load(const std::string& id, std::string& record) = 0;
  // Stores the record with the idle TTL.
  virtual bool save(const std::string& id, const std::string& record) = 0;
};

class SessionStore {
 public:
  SessionStore(SessionConfig config, sched::Clock& clock, std::shared_ptr<SessionTier> tier = nullptr);

  enum class Refusal { none, full, not_found, busy };
  // The session with `id` (here, or in the shared tier), or a new one when `id` is empty.
  // nullopt when `id` is unknown or expired, when a turn of it runs (here or on another
  // replica), or when the store is full of running turns; `why` says which. Expired sessions
  // are dropped on the way; when the store is full the least recently used session makes room.
  std::optional<Session> begin_turn(const std::string& id, std::string* error,
                                    Refusal* why = nullptr);
  // Appends the finished turn (bounded by max_turns), shares it and releases the session.
  void end_turn(const std::string& id, const TurnRecord& turn);
  // Releases the session without changing its history (failed or cancelled turn).
  void abort_turn(const std::string& id);
  std::size_t size() const;

 private:
  void expire_locked(sched::Clock::time_point now);
  static std::string new_id(const char* prefix);
  SessionConfig config_;
  sched::Clock& clock_;
  std::shared_ptr<SessionTier> tier_;
  mutable std::mutex mutex_;
  std::map<std::string, Session, std::less<>> sessions_;
};

}  // namespace talkserve::pipeline
