#pragma once
// Admission control at the edge: API key authentication, per-key token buckets, priority
// tiers and the global in-flight bound. The HTTP layer calls admit() once per request, before
// reading a large body or enqueueing work, and maps a rejection to a response in one place:
//
//   auto a = gateway.admit(req.authorization(), route_requires_auth);
//   if (!a.ok()) return error(a.http_status(), a.message, a.error_code(), a.retry_after_s);
//   // keep a.permit alive until the response is complete (streaming included)
//   enqueue(work, priority(a.tier));
//
// Decisions, in order:
//   1. route_requires_auth == false (/healthz, /readyz, /metrics): always ok, tier standard,
//      no slot taken, never rate-limited, so probes and scrapes work under overload.
//   2. draining -> 503.
//   3. Auth on (keys configured): missing header / not "Bearer <token>" / unknown key -> 401.
//      Auth off: tier standard, no key, no rate limit (there is no identity to limit).
//   4. global in-flight bound full -> 503, Retry-After 1. Checked before the bucket so that a
//      503 does not cost the client a token.
//   5. the key's request quota for the current window used up -> 429 quota_exceeded,
//      Retry-After = seconds to the window's end (RequestQuota). Checked before the bucket so
//      that a client over its quota does not also drain its bucket.
//   6. the key's token bucket empty -> 429, Retry-After = ceil(time to next token), >= 1 s.
//      The quota taken in step 5 is given back: a rate-limited request costs no quota.
//
// Metrics: talkserve_admitted_total{tier}, talkserve_unauthorized_total,
// talkserve_rate_limited_total{tier}, talkserve_admission_rejected_total{reason},
// talkserve_in_flight_requests, talkserve_max_in_flight_requests.

#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "talkserve/gateway/api_key.hpp"
#include "talkserve/gateway/gateway_config.hpp"
#include "talkserve/gateway/in_flight.hpp"
#include "talkserve/gateway/request_quota.hpp"
#include "talkserve/gateway/tier.hpp"
#include "talkserve/gateway/token_bucket.hpp"
#include "talkserve/sched/clock.hpp"

namespace talkserve::obs {
class MetricsRegistry;
class Counter;
}  // namespace talkserve::obs

namespace talkserve::gateway {

enum class AdmissionStatus { ok, unauthorized, rate_limited, overloaded, quota_exceeded };

// 200, 401, 429, 503, 429.
int http_status(AdmissionStatus s);
// "ok", "unauthorized", "rate_limited", "overloaded", "quota_exceeded" (the `reason` label).
std::string_view to_string(AdmissionStatus s);

struct Admission {
  AdmissionStatus status = AdmissionStatus::ok;
  std::string message;  // for the client; never contains a secret
  Tier tier = Tier::standard;
  std::string key_name;   // empty when auth is off or the route is exempt
  int retry_after_s = 0;  // >= 1 for rate_limited and overloaded, else 0
  InFlightPermit permit;  // holds a slot when ok on an auth route; release when done

  bool ok() const { return status == AdmissionStatus::ok; }
  int http_status() const { return gateway::http_status(status); }
  // OpenAI-style error code: "invalid_api_key", "rate_limit_exceeded", "server_overloaded",
  // "quota_exceeded"; empty when ok.
  std::string_view error_code() const;
};

// Returns the token of an "Authorization: Bearer <token>" value (scheme case-insensitive,
// surrounding whitespace ignored); nullopt when the value has another shape or the token has
// spaces or control characters.
std::optional<std::string_view> parse_bearer_token(std::string_view header_value);

class Gateway {
 public:
  // Validates the config and loads the keys (throws std::invalid_argument naming the bad key,
  // file and line). `clock` and `metrics` must outlive the Gateway; all permits must be
  // released before it is destroyed.
  // `quota_phase`: how far into its current quota window `clock.now()` is; the windows start
  // that long before the gateway (the server passes the time since the window's start in UTC,
  // so that every replica's windows agree; 0 starts the first window now).
  Gateway(const GatewayConfig& config, sched::Clock& clock, obs::MetricsRegistry& metrics,
          sched::Clock::duration quota_phase = {});
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Thread-safe: called concurrently from all I/O threads. Never throws for client input.
  Admission admit(std::optional<std::string_view> authorization_header, bool route_requires_auth);

  // Re-reads the keys (inline and keys_file), e.g. on SIGHUP, and swaps them in atomically.
  // Keys whose name, rate and burst are unchanged keep their bucket state; keys whose name and
  // requests_per_day are unchanged keep their quota count. On error the old
  // keys stay and std::invalid_argument is thrown. Thread-safe.
  void reload_keys();

  // While draining, auth routes get 503 so a load balancer moves traffic away. Thread-safe.
  void set_draining(bool draining);
  bool draining() const { return draining_.load(std::memory_order_relaxed); }

  // The keys with a request quota and their counters, for QuotaSync (the same objects admit()
  // uses; a reload may replace some). Thread-safe.
  struct KeyQuota {
    std::string key_name;
    std::shared_ptr<RequestQuota> quota;
  };
  std::vector<KeyQuota> quotas() const;

  bool auth_enabled() const { return config_.auth_configured(); }
  std::size_t key_count() const;
  std::size_t in_flight() const { return limiter_.in_flight(); }
  std::size_t max_in_flight() const { return limiter_.max_in_flight(); }

 private:
  struct KeyState;
  struct Metrics;
  std::shared_ptr<const KeyState> build_key_state(const KeyState* previous) const;
  std::shared_ptr<const KeyState> key_state() const;
  Admission reject(AdmissionStatus status, std::string message, Tier tier, std::string key_name,
                   int retry_after_s);

  const GatewayConfig config_;
  sched::Clock& clock_;
  const sched::Clock::time_point quota_origin_;  // quota windows start here
  std::unique_ptr<Metrics> metrics_;
  InFlightLimiter limiter_;
  std::atomic<bool> draining_{false};
  mutable std::mutex keys_mutex_;         // guards the keys_ pointer only
  std::shared_ptr<const KeyState> keys_;  // immutable snapshot; admit() copies the pointer
};

}  // namespace talkserve::gateway
