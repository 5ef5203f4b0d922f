#include "talkserve/pipeline/session_store.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <utility>

namespace talkserve::pipeline {

using json = nlohmann::json;

void SessionConfig::validate() const {
  if (idle_ttl.count() < 1) throw std::invalid_argument("session_ttl_s: must be >= 1");
  if (max_sessions < 1) throw std::invalid_argument("max_sessions: must be >= 1");
  if (max_turns < 1) throw std::invalid_argument("max_history_turns: must be >= 1");
}

namespace {
constexpr int kRecordFormat = 1;
}

std::string serialize_session(const Session& s) {
  json history = json::array();
  for (const auto& m : s.history) history.push_back({{"role", m.role}, {"content", m.content}});
  json record{{"format", kRecordFormat}, {"version", s.version}, {"voice", s.voice},
              {"avatar", s.avatar}, {"history", std::move(history)}};
  // Replies are the model's text: replace invalid UTF-8 instead of failing the turn.
  return record.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<Session> parse_session(const std::string& id, std::string_view record) {
  try {
    const json j = json::parse(record);
    if (!j.is_object() || j.value("format", 0) != kRecordFormat) return std::nullopt;
    Session s;
    s.id = id;
    s.version = j.at("version").get<std::uint64_t>();
    s.voice = j.at("voice").get<std::string>();
    s.avatar = j.at("avatar").get<std::string>();
    for (const auto& m : j.at("history")) {
      s.history.push_back({m.at("role").get<std::string>(), m.at("content").get<std::string>()});
    }
    return s;
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

bool is_session_id(std::string_view id) {
  constexpr std::string_view kPrefix = "sess_";
  if (id.size() != kPrefix.size() + 32 || !id.starts_with(kPrefix)) return false;
  return id.find_first_not_of("0123456789abcdef", kPrefix.size()) == std::string_view::npos;
}

SessionStore::SessionStore(SessionConfig config, sched::Clock& clock,
                           std::shared_ptr<SessionTier> tier)
    : config_((config.validate(), config)), clock_(clock), tier_(std::move(tier)) {}

std::string SessionStore::new_id(const char* prefix) {
  // Unguessable: a session holds a conversation, and its id is the only credential for it.
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("no random bytes for a session id");
  static const char* hex = "0123456789abcdef";
  std::string id = prefix;
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

std::optional<Session> SessionStore::begin_turn(const std::string& id, std::string* error,
                                                Refusal* why) {
  auto refuse = [&](Refusal r, std::string what) -> std::optional<Session> {
    if (error) *error = std::move(what);
    if (why) *why = r;
    return std::nullopt;
  };
  if (why) *why = Refusal::none;
  const std::string token = tier_ ? new_id("turn_") : std::string();
  std::unique_lock lock(mutex_);
  auto now = clock_.now();
  expire_locked(now);

  // Room for one more session (a new one, or one only the shared tier knows).
  auto make_room = [&]() -> bool {
    if (sessions_.size() < config_.max_sessions) return true;
    auto oldest = sessions_.end();
    for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
      if (!it->second.busy &&
          (oldest == sessions_.end() || it->second.last_used < oldest->second.last_used)) {
        oldest = it;
      }
    }
    if (oldest == sessions_.end()) return false;
    sessions_.erase(oldest);
    return true;
  };

  if (id.empty()) {
    if (!make_room()) return refuse(Refusal::full, "too many sessions are in a turn; retry later");
    Session s;
    s.id = new_id("sess_");
    s.last_used = now;
    s.busy = true;
    s.turn_token = token;
    sessions_.emplace(s.id, s);
    lock.unlock();
    if (tier_) {
      // Known to every replica from now on (a live session starts with no turn at all); a new
      // random id cannot be locked elsewhere, so the lock only guards this turn.
      tier_->lock(s.id, token);
      tier_->save(s.id, serialize_session(s));
    }
    return s;
  }

  if (!is_session_id(id)) {
    // Never looked up, never sent to the shared tier, never echoed (it may be huge).
    return refuse(Refusal::not_found, "session_id: not a session id (sess_ and 32 hex digits)");
  }
  auto it = sessions_.find(id);
  if (it != sessions_.end() && it->second.busy) {
    return refuse(Refusal::busy, "session '" + id + "' already has a turn in progress");
  }
  if (!tier_) {
    if (it == sessions_.end()) {
      return refuse(Refusal::not_found, "session '" + id + "' does not exist or has expired");
    }
    it->second.busy = true;
    it->second.last_used = now;
    return it->second;
  }

  // Hold the local copy (or a placeholder) while the tier is asked without the mutex.
  const bool had_local = it != sessions_.end();
  if (!had_local) {
    if (!make_room()) return refuse(Refusal::full, "too many sessions are in a turn; retry later");
    Session placeholder;
    placeholder.id = id;
    it = sessions_.emplace(id, std::move(placeholder)).first;
  }
  it->second.busy = true;
  it->second.turn_token = token;
  lock.unlock();

  std::optional<Session> shared;
  bool refused_busy = false;
  switch (tier_->lock(id, token)) {
    case SessionTier::Lock::busy:
      refused_busy = true;
      break;
    case SessionTier::Lock::acquired: {
      std::string record;
      const auto loaded = tier_->load(id, record);
      if (loaded == SessionTier::Load::found) shared = parse_session(id, record);
      break;
    }
    case SessionTier::Lock::unavailable:
      break;  // local only
  }

  lock.lock();
  now = clock_.now();
  it = sessions_.find(id);  // still there: busy entries are neither expired nor evicted
  if (refused_busy) {
    if (had_local) {
      it->second.busy = false;
      it->second.turn_token.clear();
    } else {
      sessions_.erase(it);
    }
    return refuse(Refusal::busy, "session '" + id + "' already has a turn in progress");
  }
  if (shared && (!had_local || shared->version >= it->second.version)) {
    shared->busy = true;
    shared->turn_token = token;
    it->second = std::move(*shared);
  } else if (!had_local) {
    sessions_.erase(it);
    lock.unlock();
    tier_->unlock(id, token);
    return refuse(Refusal::not_found, "session '" + id + "' does not exist or has expired");
  }
  it->second.last_used = now;
  return it->second;
}

void SessionStore::end_turn(const std::string& id, const TurnRecord& turn) {
  std::unique_lock lock(mutex_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  auto& s = it->second;
  s.history.push_back({"user", turn.user});
  s.history.push_back({"assistant", turn.assistant});
  while (s.history.size() > 2 * config_.max_turns) s.history.erase(s.history.begin(), s.history.begin() + 2);
  if (!turn.voice.empty()) s.voice = turn.voice;
  if (!turn.avatar.empty()) s.avatar = turn.avatar;
  ++s.version;
  s.busy = false;
  s.last_used = clock_.now();
  const std::string token = std::exchange(s.turn_token, std::string());
  if (!tier_) return;
  const std::string record = serialize_session(s);
  lock.unlock();
  tier_->save(id, record);
  if (!token.empty()) tier_->unlock(id, token);
}

void SessionStore::abort_turn(const std::string& id) {
  std::unique_lock lock(mutex_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  it->second.busy = false;
  it->second.last_used = clock_.now();
  const std::string token = std::exchange(it->second.turn_token, std::string());
  lock.unlock();
  if (tier_ && !token.empty()) tier_->unlock(id, token);
}

std::size_t SessionStore::size() const {
  std::lock_guard lock(mutex_);
  return sessions_.size();
}

}  // namespace talkserve::pipeline
