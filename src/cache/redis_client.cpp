#include "talkserve/cache/redis_client.hpp"

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


void RedisClientConfig::validate() const {
  parse_redis_url(url);
  if (timeout.count() < 1) throw std::invalid_argument("redis.timeout_ms: must be >= 1");
  if (max_connections < 1) throw std::invalid_argument("redis: max_connections must be >= 1");
  if (retry_min.count() < 0 || retry_max < retry_min) {
    throw std::invalid_argument("redis: retry_min must be >= 0 and <= retry_max");
  }
}

RedisClient::RedisClient(RedisClientConfig config, obs::MetricsRegistry* metrics, sched::Clock& clock)
    : config_(std::move(config)), clock_(clock), metrics_(metrics) {
  config_.validate();
  url_ = parse_redis_url(config_.url);
  if (metrics_) {
    m_up_ = &metrics_->gauge("talkserve_redis_up",
                             "1 when the last Redis call succeeded, 0 after a failure.");
    // Present from the start (at 0), so that dashboards and alerts see the series.
    std::lock_guard lock(mutex_);
    for (std::string_view op : {"connect", "ping"}) m_errors_.emplace(std::string(op), nullptr);
    for (auto& [op, counter] : m_errors_) {
      counter = &metrics_->counter("talkserve_redis_errors_total",
                                   "Failed Redis connects and commands (the request carried on "
                                   "without Redis).",
                                   {{"op", op}});
    }
  }
}

RedisClient::~RedisClient() {
  std::lock_guard lock(mutex_);
  for (redisContext* c : idle_) redisFree(c);
  idle_.clear();
}

RedisClientStats RedisClient::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void RedisClient::count_error_locked(std::string_view op) {
  ++stats_.errors;
  if (metrics_) {
    auto it = m_errors_.find(op);
    if (it == m_errors_.end()) {
      auto* c = &metrics_->counter("talkserve_redis_errors_total",
                                   "Failed Redis connects and commands (the request carried on "
                                   "without Redis).",
                                   {{"op", std::string(op)}});
      it = m_errors_.emplace(std::string(op), c).first;
    }
    it->second->inc();
  }
  if (m_up_) m_up_->set(0);
}

redisContext* RedisClient::connect(std::string& why) {
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

void RedisClient::failure_locked(std::string_view op, const std::string& why,
                                 std::vector<redisContext*>& to_free) {
  count_error_locked(op);
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
    spdlog::warn("redis {}:{}: {} failed: {}; carrying on without Redis, retrying in {} ms{}",
                 url_.host, url_.port, op, why, backoff.count(),
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

std::optional<RedisClient::Lease> RedisClient::acquire(RedisResult::Status& why) {
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
      why = RedisResult::Status::skipped;
      return std::nullopt;
    }
    if (open_ < config_.max_connections) break;
    // Every connection is busy: wait a little for one, else go without Redis this time.
    if (!clock_.wait_until(lock, idle_cv_, deadline) && idle_.empty()) {
      ++stats_.skipped;
      why = RedisResult::Status::skipped;
      return std::nullopt;
    }
  }
  ++open_;
  const std::uint64_t generation = generation_;
  lock.unlock();

  std::string error;
  redisContext* c = connect(error);

  lock.lock();
  if (!c) {
    --open_;
    std::vector<redisContext*> to_free;
    failure_locked("connect", error, to_free);
    lock.unlock();
    for (redisContext* f : to_free) redisFree(f);
    why = RedisResult::Status::failed;
    return std::nullopt;
  }
  ++stats_.connects;
  if (failures_ > 0) {
    spdlog::info("redis {}:{}: connected again", url_.host, url_.port);
    failures_ = 0;
  }
  if (m_up_) m_up_->set(1);
  return Lease{c, generation};
}

void RedisClient::release(Lease lease, bool ok, std::string_view op, const std::string& why) {
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

namespace {

RedisReply convert(const redisReply* r) {
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::string;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::status;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::error;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::integer;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::array;
      for (std::size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
      break;
    default:
      out.type = RedisReply::Type::nil;
      break;
  }
  return out;
}

}  // namespace

RedisResult RedisClient::command(std::string_view op, std::initializer_list<std::string_view> argv) {
  RedisResult result;
  auto lease = acquire(result.status);
  if (!lease) return result;
  std::vector<const char*> args;
  std::vector<std::size_t> lens;
  args.reserve(argv.size());
  lens.reserve(argv.size());
  for (std::string_view a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  Reply r;
  {
    SigpipeGuard guard;
    r.reset(static_cast<redisReply*>(redisCommandArgv(lease->ctx, static_cast<int>(args.size()),
                                                      args.data(), lens.data())));
  }
  if (!r) {
    release(*lease, false, op, context_error(lease->ctx));
    result.status = RedisResult::Status::failed;
    return result;
  }
  result.status = RedisResult::Status::ok;
  result.reply = convert(r.get());
  if (result.reply.type == RedisReply::Type::error) {
    // e.g. OOM under maxmemory with noeviction, or WRONGTYPE: the connection itself is fine.
    spdlog::debug("redis {}: {}", op, result.reply.str);
    std::lock_guard lock(mutex_);
    count_error_locked(op);
  }
  release(*lease, true, op, {});
  return result;
}

bool RedisClient::ping() {
  auto r = command("ping", {"PING"});
  return r.ok() && r.reply.type == RedisReply::Type::status && r.reply.str == "PONG";
}

}  // namespace talkserve::cache
