#include "talkserve/pipeline/session_store.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <stdexcept>

namespace talkserve::pipeline {

void SessionConfig::validate() const {
  if (idle_ttl.count() < 1) throw std::invalid_argument("session_ttl_s: must be >= 1");
  if (max_sessions < 1) throw std::invalid_argument("max_sessions: must be >= 1");
  if (max_turns < 1) throw std::invalid_argument("max_history_turns: must be >= 1");
}

SessionStore::SessionStore(SessionConfig config, sched::Clock& clock)
    : config_((config.validate(), config)), clock_(clock) {}

std::string SessionStore::new_id() {
  // Unguessable: a session holds a conversation, and its id is the only credential for it.
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("no random bytes for a session id");
  static const char* hex = "0123456789abcdef";
  std::string id = "sess_";
  for (unsigned char b : bytes) {
    id += hex[b >> 4];
    id += hex[b & 15];
  }
  return id;
}

void SessionStore::expire_locked(sched::Clock::time_point now) {
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (!it->second.busy && now - it->second.last_used > config_.idle_ttl) {
      it = sessions_.erase(it);
    } else {
      ++it;
    }
  }
}

std::optional<Session> SessionStore::begin_turn(const std::string& id, std::string* error) {
  std::lock_guard lock(mutex_);
  const auto now = clock_.now();
  expire_locked(now);
  if (id.empty()) {
    if (sessions_.size() >= config_.max_sessions) {
      auto oldest = sessions_.end();
      for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
        if (!it->second.busy &&
            (oldest == sessions_.end() || it->second.last_used < oldest->second.last_used)) {
          oldest = it;
        }
      }
      if (oldest == sessions_.end()) {
        if (error) *error = "too many sessions are in a turn; retry later";
        return std::nullopt;
      }
      sessions_.erase(oldest);
    }
    Session s;
    s.id = new_id();
    s.last_used = now;
    s.busy = true;
    sessions_.emplace(s.id, s);
    return s;
  }
  auto it = sessions_.find(id);
  if (it == sessions_.end()) {
    if (error) *error = "session '" + id + "' does not exist or has expired";
    return std::nullopt;
  }
  if (it->second.busy) {
    if (error) *error = "session '" + id + "' already has a turn in progress";
    return std::nullopt;
  }
  it->second.busy = true;
  it->second.last_used = now;
  return it->second;
}

void SessionStore::end_turn(const std::string& id, const std::string& user,
                            const std::string& assistant) {
  std::lock_guard lock(mutex_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  auto& h = it->second.history;
  h.push_back({"user", user});
  h.push_back({"assistant", assistant});
  while (h.size() > 2 * config_.max_turns) h.erase(h.begin(), h.begin() + 2);
  it->second.busy = false;
  it->second.last_used = clock_.now();
}

void SessionStore::abort_turn(const std::string& id) {
  std::lock_guard lock(mutex_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  it->second.busy = false;
  it->second.last_used = clock_.now();
}

std::size_t SessionStore::size() const {
  std::lock_guard lock(mutex_);
  return sessions_.size();
}

}  // namespace talkserve::pipeline
