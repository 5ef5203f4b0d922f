#include "talkserve/cache/redis_clip_tier.hpp"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <utility>

#include "talkserve/cache/clip_key.hpp"

namespace talkserve::cache {

namespace {

// hiredis writes with write(2): a connection Redis closed raises SIGPIPE, which would kill the
// process. The server does not ignore SIGPIPE (that is not a library's call), so each command
// blocks it for its thread and swallows one raised meanwhile.
class SigpipeGuard {
 public:
  SigpipeGuard() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    blocked_ = pthread_sigmask(SIG_BLOCK, &pipe_, &old_) == 0;
  }
  ~SigpipeGuard() {
    if (!blocked_) return;
    if (!was_pending_) {
      sigset_t pending;
      sigemptyset(&pending);
      if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
        struct timespec zero {};
        while (sigtimedwait(&pipe_, nullptr, &zero) < 0 && errno == EINTR) {
        }
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

 private:
  sigset_t pipe_{}, old_{};
  bool was_pending_ = false;
  bool blocked_ = false;
};

struct ReplyDeleter {
  void operator()(redisReply* r) const {
    if (r) freeReplyObject(r);
  }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

std::string context_error(const redisContext* c) {
  if (!c) return "out of memory";
  std::string why = c->errstr[0] ? std::string(c->errstr) : "connection error " + std::to_string(c->err);
  // A socket timeout (SO_RCVTIMEO/SO_SNDTIMEO) surfaces as EAGAIN's text.
  if (c->err == REDIS_ERR_IO && why == std::strerror(EAGAIN)) why = "timed out (redis.timeout_ms)";
  return why;
}

}  // namespace

RedisUrl parse_redis_url(std::string_view url) {
  auto bad = [&](const std::string& why) -> RedisUrl {
    throw std::invalid_argument("redis.url: " + why + " (expected redis://[[user]:password@]host[:port][/db], got \"" +
                                std::string(url) + "\")");
  };
  constexpr std::string_view kScheme = "redis://";
  if (!url.starts_with(kScheme)) return bad("must start with redis://");
  std::string_view rest = url.substr(kScheme.size());
  RedisUrl out;
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    auto colon = userinfo.find(':');
    if (colon == std::string_view::npos) {
      out.password = std::string(userinfo);
    } else {
      out.user = std::string(userinfo.substr(0, colon));
      out.password = std::string(userinfo.substr(colon + 1));
    }
  }
  std::string_view hostport = rest, db;
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    hostport = rest.substr(0, slash);
    db = rest.substr(slash + 1);
  }
  std::string_view port;
  if (hostport.starts_with('[')) {  // [IPv6]:port
    auto close = hostport.find(']');
    if (close == std::string_view::npos) return bad("unterminated [IPv6 address]");
    out.host = std::string(hostport.substr(1, close - 1));
    auto after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("unexpected text after the host");
      port = after.substr(1);
      if (port.empty()) return bad("empty port");
    }
  } else if (auto colon = hostport.rfind(':'); colon != std::string_view::npos) {
    out.host = std::string(hostport.substr(0, colon));
    port = hostport.substr(colon + 1);
    if (port.empty()) return bad("empty port");
  } else {
    out.host = std::string(hostport);
  }
  if (out.host.empty()) return bad("no host");
  if (!port.empty()) {
    unsigned p = 0;
    auto r = std::from_chars(port.data(), port.data() + port.size(), p);
    if (r.ec != std::errc{} || r.ptr != port.data() + port.size() || p == 0 || p > 65535) {
      return bad("port must be 1..65535");
    }
    out.port = static_cast<std::uint16_t>(p);
  }
  if (!db.empty()) {
    int n = -1;
    auto r = std::from_chars(db.data(), db.data() + db.size(), n);
    if (r.ec != std::errc{} || r.ptr != db.data() + db.size() || n < 0) {
      return bad("database must be a number >= 0");
    }
    out.db = n;
  }
  return out;
}

void RedisClipTierConfig::validate() const {
  parse_redis_url(url);
  if (ttl.count() < 1) throw std::invalid_argument("redis.clip_ttl_s: must be >= 1");
  if (max_entry_bytes == 0) throw std::invalid_argument("redis.max_clip_mb: must be >= 1");
  if (timeout.count() < 1) throw std::invalid_argument("redis.timeout_ms: must be >= 1");
  if (key_prefix.empty()) throw std::invalid_argument("redis.key_prefix: must not be empty");
  if (max_connections < 1) throw std::invalid_argument("redis: max_connections must be >= 1");
  if (retry_min.count() < 0 || retry_max < retry_min) {
    throw std::invalid_argument("redis: retry_min must be >= 0 and <= retry_max");
  }
}

RedisClipTier::RedisClipTier(RedisClipTierConfig config, obs::MetricsRegistry* metrics,
                             sched::Clock& clock)
    : config_(std::move(config)), clock_(clock) {
  config_.validate();
  url_ = parse_redis_url(config_.url);
  if (metrics) {
    m_hits_ = &metrics->counter("talkserve_redis_clip_hits_total",
                                "Clips found in the Redis tier after a local miss.");
    m_misses_ = &metrics->counter("talkserve_redis_clip_misses_total",
                                  "Redis tier lookups that found no clip.");
    m_stores_ = &metrics->counter("talkserve_redis_clip_stores_total",
                                  "Clips written to the Redis tier.");
    m_too_large_ = &metrics->counter("talkserve_redis_clip_skipped_total",
                                     "Redis tier calls not made.", {{"reason", "too_large"}});
    m_skipped_ = &metrics->counter("talkserve_redis_clip_skipped_total",
                                   "Redis tier calls not made.", {{"reason", "unavailable"}});
    for (Op op : {Op::connect, Op::get, Op::set, Op::del, Op::ttl, Op::ping}) {
      m_errors_[static_cast<int>(op)] = &metrics->counter(
          "talkserve_redis_errors_total",
          "Failed Redis connects and commands (the request carried on without Redis).",
          {{"op", std::string(op_name(op))}});
    }
    m_up_ = &metrics->gauge("talkserve_redis_up",
                            "1 when the last Redis call succeeded, 0 after a failure.");
  }
  if (ping()) {
    spdlog::info("redis clip tier: {}:{} db {} answers (ttl {} s, entries up to {} bytes)",
                 url_.host, url_.port, url_.db, config_.ttl.count(), config_.max_entry_bytes);
  } else {
    spdlog::warn("redis clip tier: {}:{} does not answer yet; serving from the local cache "
                 "and retrying",
                 url_.host, url_.port);
  }
}

RedisClipTier::~RedisClipTier() {
  std::lock_guard lock(mutex_);
  for (redisContext* c : idle_) redisFree(c);
  idle_.clear();
}

std::string_view RedisClipTier::op_name(Op op) {
  switch (op) {
    case Op::connect: return "connect";
    case Op::get: return "get";
    case Op::set: return "set";
    case Op::del: return "del";
    case Op::ttl: return "ttl";
    case Op::ping: return "ping";
  }
  return "unknown";
}

std::string RedisClipTier::key_for(std::string_view id) const {
  return config_.key_prefix + std::string(id);
}

RedisClipTierStats RedisClipTier::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void RedisClipTier::count_error(Op op) {
  // Called with mutex_ held.
  ++stats_.errors;
  if (auto* c = m_errors_[static_cast<int>(op)]) c->inc();
  if (m_up_) m_up_->set(0);
}

redisContext* RedisClipTier::connect(std::string& why) {
  SigpipeGuard guard;
  const timeval tv = to_timeval(config_.timeout);
  redisContext* c = redisConnectWithTimeout(url_.host.c_str(), url_.port, tv);
  auto fail = [&](std::string what) -> redisContext* {
    why = std::move(what);
    if (c) redisFree(c);
    return nullptr;
  };
  if (!c || c->err) return fail("connect: " + context_error(c));
  if (redisSetTimeout(c, tv) != REDIS_OK) return fail("setting the timeout: " + context_error(c));
  auto command_ok = [&](Reply r, const char* what) -> bool {
    if (!r) {
      fail(std::string(what) + ": " + context_error(c));
      return false;
    }
    if (r->type == REDIS_REPLY_ERROR) {
      fail(std::string(what) + ": " + std::string(r->str, r->len));
      return false;
    }
    return true;
  };
  if (!url_.password.empty()) {
    Reply r(static_cast<redisReply*>(
        url_.user.empty()
            ? redisCommand(c, "AUTH %b", url_.password.data(), url_.password.size())
            : redisCommand(c, "AUTH %b %b", url_.user.data(), url_.user.size(),
                           url_.password.data(), url_.password.size())));
    if (!command_ok(std::move(r), "AUTH")) return nullptr;
  }
  if (url_.db != 0) {
    Reply r(static_cast<redisReply*>(redisCommand(c, "SELECT %d", url_.db)));
    if (!command_ok(std::move(r), "SELECT")) return nullptr;
  }
  return c;
}

void RedisClipTier::failure_locked(Op op, const std::string& why,
                                   std::vector<redisContext*>& to_free) {
  count_error(op);
  ++generation_;
  to_free.insert(to_free.end(), idle_.begin(), idle_.end());
  open_ -= idle_.size();
  idle_.clear();
  ++failures_;
  auto backoff = config_.retry_min;
  for (std::uint32_t i = 1; i < failures_ && backoff < config_.retry_max; ++i) backoff *= 2;
  backoff = std::min(backoff, config_.retry_max);
  const auto now = clock_.now();
  retry_at_ = now + backoff;
  if (!logged_once_ || failures_ == 1 || now - last_log_ >= config_.log_interval) {
    spdlog::warn("redis clip tier: {} failed: {}; serving from the local cache, retrying in {} ms"
                 "{}",
                 op_name(op), why, backoff.count(),
                 unlogged_ ? fmt::format(" ({} more failures since the last message)", unlogged_)
                           : std::string());
    logged_once_ = true;
    last_log_ = now;
    unlogged_ = 0;
  } else {
    ++unlogged_;
  }
  idle_cv_.notify_all();  // waiters for a slot may open one now (or see the back-off)
}

std::optional<RedisClipTier::Lease> RedisClipTier::acquire(Op op) {
  (void)op;
  std::unique_lock lock(mutex_);
  const auto deadline = clock_.now() + config_.timeout;
  for (;;) {
    if (!idle_.empty()) {
      Lease l{idle_.back(), generation_};
      idle_.pop_back();
      return l;
    }
    if (failures_ > 0 && clock_.now() < retry_at_) {
      ++stats_.skipped;
      if (m_skipped_) m_skipped_->inc();
      return std::nullopt;
    }
    if (open_ < config_.max_connections) break;
    // Every connection is busy: wait a little for one, else go without Redis this time.
    if (!clock_.wait_until(lock, idle_cv_, deadline) && idle_.empty()) {
      ++stats_.skipped;
      if (m_skipped_) m_skipped_->inc();
      return std::nullopt;
    }
  }
  ++open_;
  const std::uint64_t generation = generation_;
  lock.unlock();

  std::string why;
  redisContext* c = connect(why);

  lock.lock();
  if (!c) {
    --open_;
    std::vector<redisContext*> to_free;
    failure_locked(Op::connect, why, to_free);
    lock.unlock();
    for (redisContext* f : to_free) redisFree(f);
    return std::nullopt;
  }
  ++stats_.connects;
  if (failures_ > 0) {
    spdlog::info("redis clip tier: connected to {}:{} again", url_.host, url_.port);
    failures_ = 0;
  }
  if (m_up_) m_up_->set(1);
  return Lease{c, generation};
}

void RedisClipTier::release(Lease lease, bool ok, Op op, const std::string& why) {
  std::vector<redisContext*> to_free;
  {
    std::lock_guard lock(mutex_);
    if (!ok) {
      --open_;
      to_free.push_back(lease.ctx);
      failure_locked(op, why, to_free);
    } else if (lease.generation != generation_) {
      --open_;  // opened before a failure: maybe to the Redis that went away
      to_free.push_back(lease.ctx);
      idle_cv_.notify_one();
    } else {
      failures_ = 0;
      if (m_up_) m_up_->set(1);
      idle_.push_back(lease.ctx);
      idle_cv_.notify_one();
    }
  }
  for (redisContext* c : to_free) redisFree(c);
}

std::optional<std::string> RedisClipTier::get(std::string_view id) {
  if (!is_clip_id(id)) return std::nullopt;
  auto lease = acquire(Op::get);
  if (!lease) return std::nullopt;
  const std::string key = key_for(id);
  Reply r;
  {
    SigpipeGuard guard;
    r.reset(static_cast<redisReply*>(redisCommand(lease->ctx, "GET %b", key.data(), key.size())));
  }
  if (!r) {
    release(*lease, false, Op::get, context_error(lease->ctx));
    return std::nullopt;
  }
  if (r->type == REDIS_REPLY_STRING) {
    std::string bytes(r->str, r->len);
    release(*lease, true, Op::get, {});
    std::lock_guard lock(mutex_);
    ++stats_.hits;
    if (m_hits_) m_hits_->inc();
    return bytes;
  }
  if (r->type == REDIS_REPLY_NIL) {
    release(*lease, true, Op::get, {});
    std::lock_guard lock(mutex_);
    ++stats_.misses;
    if (m_misses_) m_misses_->inc();
    return std::nullopt;
  }
  // An error reply (or a key of another type): the connection itself is fine.
  std::string why = r->type == REDIS_REPLY_ERROR ? std::string(r->str, r->len)
                                                 : "unexpected reply type " + std::to_string(r->type);
  {
    std::lock_guard lock(mutex_);
    count_error(Op::get);
  }
  spdlog::debug("redis clip tier: GET {}: {}", key, why);
  release(*lease, true, Op::get, {});
  return std::nullopt;
}

RedisClipTier::PutResult RedisClipTier::put(std::string_view id, std::string_view bytes) {
  if (!is_clip_id(id)) return PutResult::unavailable;
  if (bytes.size() > config_.max_entry_bytes) {
    std::lock_guard lock(mutex_);
    ++stats_.too_large;
    if (m_too_large_) m_too_large_->inc();
    return PutResult::too_large;
  }
  auto lease = acquire(Op::set);
  if (!lease) return PutResult::unavailable;
  const std::string key = key_for(id);
  const long long ttl = config_.ttl.count();
  Reply r;
  {
    SigpipeGuard guard;
    r.reset(static_cast<redisReply*>(redisCommand(lease->ctx, "SET %b %b EX %lld", key.data(),
                                                  key.size(), bytes.data(), bytes.size(), ttl)));
  }
  if (!r) {
    release(*lease, false, Op::set, context_error(lease->ctx));
    return PutResult::unavailable;
  }
  if (r->type == REDIS_REPLY_ERROR) {
    // e.g. OOM under maxmemory with noeviction: this clip stays local, the connection is fine.
    const std::string why(r->str, r->len);
    {
      std::lock_guard lock(mutex_);
      count_error(Op::set);
    }
    spdlog::warn("redis clip tier: SET {} ({} bytes): {}", key, bytes.size(), why);
    release(*lease, true, Op::set, {});
    return PutResult::unavailable;
  }
  release(*lease, true, Op::set, {});
  std::lock_guard lock(mutex_);
  ++stats_.stores;
  if (m_stores_) m_stores_->inc();
  return PutResult::stored;
}

bool RedisClipTier::erase(std::string_view id) {
  if (!is_clip_id(id)) return false;
  auto lease = acquire(Op::del);
  if (!lease) return false;
  const std::string key = key_for(id);
  Reply r;
  {
    SigpipeGuard guard;
    r.reset(static_cast<redisReply*>(redisCommand(lease->ctx, "DEL %b", key.data(), key.size())));
  }
  if (!r) {
    release(*lease, false, Op::del, context_error(lease->ctx));
    return false;
  }
  const bool existed = r->type == REDIS_REPLY_INTEGER && r->integer > 0;
  release(*lease, true, Op::del, {});
  return existed;
}

std::optional<std::int64_t> RedisClipTier::ttl_seconds(std::string_view id) {
  if (!is_clip_id(id)) return std::nullopt;
  auto lease = acquire(Op::ttl);
  if (!lease) return std::nullopt;
  const std::string key = key_for(id);
  Reply r;
  {
    SigpipeGuard guard;
    r.reset(static_cast<redisReply*>(redisCommand(lease->ctx, "TTL %b", key.data(), key.size())));
  }
  if (!r) {
    release(*lease, false, Op::ttl, context_error(lease->ctx));
    return std::nullopt;
  }
  std::optional<std::int64_t> out;
  if (r->type == REDIS_REPLY_INTEGER && r->integer >= 0) out = r->integer;
  release(*lease, true, Op::ttl, {});
  return out;
}

bool RedisClipTier::ping() {
  auto lease = acquire(Op::ping);
  if (!lease) return false;
  Reply r;
  {
    SigpipeGuard guard;
    r.reset(static_cast<redisReply*>(redisCommand(lease->ctx, "PING")));
  }
  if (!r) {
    release(*lease, false, Op::ping, context_error(lease->ctx));
    return false;
  }
  const bool pong = r->type == REDIS_REPLY_STATUS && std::string_view(r->str, r->len) == "PONG";
  release(*lease, true, Op::ping, {});
  return pong;
}

}  // namespace talkserve::cache
