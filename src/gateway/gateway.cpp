#include "talkserve/gateway/gateway.hpp"

#include <fmt/format.h>

#include <array>
#include <cctype>
#include <stdexcept>
#include <vector>

#include "talkserve/gateway/keys_file.hpp"
#include "talkserve/obs/metrics.hpp"

namespace talkserve::gateway {

namespace {

bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

// Seconds for a Retry-After header: rounded up, at least 1.
int retry_after_seconds(TokenBucket::duration wait) {
  const auto ns = wait.count();
  const auto secs = (ns + 999'999'999) / 1'000'000'000;
  return secs < 1 ? 1 : static_cast<int>(std::min<std::int64_t>(secs, 1 << 30));
}

const GatewayConfig& validated(const GatewayConfig& c) {
  c.validate();
  return c;
}

}  // namespace

int http_status(AdmissionStatus s) {
  switch (s) {
    case AdmissionStatus::ok:
      return 200;
    case AdmissionStatus::unauthorized:
      return 401;
    case AdmissionStatus::rate_limited:
      return 429;
    case AdmissionStatus::overloaded:
      return 503;
    case AdmissionStatus::quota_exceeded:
      return 429;
  }
  return 500;
}

std::string_view to_string(AdmissionStatus s) {
  switch (s) {
    case AdmissionStatus::ok:
      return "ok";
    case AdmissionStatus::unauthorized:
      return "unauthorized";
    case AdmissionStatus::rate_limited:
      return "rate_limited";
    case AdmissionStatus::overloaded:
      return "overloaded";
    case AdmissionStatus::quota_exceeded:
      return "quota_exceeded";
  }
  return "unknown";
}

std::string_view Admission::error_code() const {
  switch (status) {
    case AdmissionStatus::ok:
      return "";
    case AdmissionStatus::unauthorized:
      return "invalid_api_key";
    case AdmissionStatus::rate_limited:
      return "rate_limit_exceeded";
    case AdmissionStatus::overloaded:
      return "server_overloaded";
    case AdmissionStatus::quota_exceeded:
      return "quota_exceeded";
  }
  return "";
}

std::optional<std::string_view> parse_bearer_token(std::string_view header_value) {
  const std::string_view v = trim(header_value);
  constexpr std::string_view kScheme = "bearer";
  if (v.size() <= kScheme.size() || !is_ows(v[kScheme.size()])) return std::nullopt;
  for (std::size_t i = 0; i < kScheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(v[i])) != kScheme[i]) return std::nullopt;
  const std::string_view token = trim(v.substr(kScheme.size()));
  if (token.empty()) return std::nullopt;
  for (unsigned char c : token)
    if (c <= 0x20 || c >= 0x7f) return std::nullopt;
  return token;
}

// ---------------------------------------------------------------------------------------------

struct Gateway::KeyState {
  KeyStore store;
  std::vector<std::shared_ptr<TokenBucket>> buckets;  // parallel to store.keys()
  std::vector<std::shared_ptr<RequestQuota>> quotas;  // parallel; null = no quota
};

struct Gateway::Metrics {
  explicit Metrics(obs::MetricsRegistry& r)
      : unauthorized(r.counter("talkserve_unauthorized_total",
                               "Requests rejected for a missing, malformed or unknown API key.")),
        in_flight(
            r.gauge("talkserve_in_flight_requests", "Admitted requests that have not finished.")) {
    for (std::size_t t = 0; t < kTierCount; ++t) {
      const std::string tier(to_string(static_cast<Tier>(t)));
      admitted[t] = &r.counter("talkserve_admitted_total", "Requests admitted by the gateway.",
                               {{"tier", tier}});
      rate_limited[t] =
          &r.counter("talkserve_rate_limited_total", "Requests rejected by their key's rate limit.",
                     {{"tier", tier}});
    }
    for (auto s : {AdmissionStatus::unauthorized, AdmissionStatus::rate_limited,
                   AdmissionStatus::overloaded, AdmissionStatus::quota_exceeded})
      rejected[static_cast<std::size_t>(s)] =
          &r.counter("talkserve_admission_rejected_total", "Requests rejected at admission.",
                     {{"reason", std::string(to_string(s))}});
    max_in_flight =
        &r.gauge("talkserve_max_in_flight_requests", "The configured bound on in-flight requests.");
  }
  obs::Counter& unauthorized;
  obs::Gauge& in_flight;
  obs::Gauge* max_in_flight = nullptr;
  std::array<obs::Counter*, kTierCount> admitted{};
  std::array<obs::Counter*, kTierCount> rate_limited{};
  std::array<obs::Counter*, 5> rejected{};  // indexed by AdmissionStatus
};

Gateway::Gateway(const GatewayConfig& config, sched::Clock& clock, obs::MetricsRegistry& metrics,
                 sched::Clock::duration quota_phase)
    : config_(validated(config)),
      clock_(clock),
      quota_origin_(clock.now() - quota_phase),
      metrics_(std::make_unique<Metrics>(metrics)),
      limiter_(config_.max_in_flight, &metrics_->in_flight) {
  metrics_->max_in_flight->set(static_cast<double>(config_.max_in_flight));
  keys_ = build_key_state(nullptr);
}

Gateway::~Gateway() = default;

std::shared_ptr<const Gateway::KeyState> Gateway::build_key_state(const KeyState* previous) const {
  auto state = std::make_shared<KeyState>();
  state->store = KeyStore(load_api_keys(config_));
  for (const auto& k : state->store.keys()) {
    std::shared_ptr<TokenBucket> bucket;
    if (previous) {
      // Keep the bucket of an unchanged key so a reload does not refill everyone's burst.
      for (std::size_t i = 0; i < previous->store.keys().size() && !bucket; ++i) {
        const auto& p = previous->store.keys()[i];
        if (p.name == k.name && p.rate_per_s == k.rate_per_s && p.burst == k.burst)
          bucket = previous->buckets[i];
      }
    }
    if (!bucket) bucket = std::make_shared<TokenBucket>(k.rate_per_s, k.burst);
    state->buckets.push_back(std::move(bucket));
    std::shared_ptr<RequestQuota> quota;
    if (k.requests_per_day > 0) {
      if (previous) {
        // Keep the count so that a reload (SIGHUP) does not hand everyone a fresh quota.
        for (std::size_t i = 0; i < previous->store.keys().size() && !quota; ++i) {
          const auto& p = previous->store.keys()[i];
          if (p.name == k.name && p.requests_per_day == k.requests_per_day)
            quota = previous->quotas[i];
        }
      }
      if (!quota)
        quota = std::make_shared<RequestQuota>(k.requests_per_day, config_.quota_window,
                                               quota_origin_);
    }
    state->quotas.push_back(std::move(quota));
  }
  return state;
}

std::shared_ptr<const Gateway::KeyState> Gateway::key_state() const {
  std::lock_guard lock(keys_mutex_);
  return keys_;
}

void Gateway::reload_keys() {
  auto fresh = build_key_state(key_state().get());
  std::lock_guard lock(keys_mutex_);
  keys_ = std::move(fresh);
}

std::vector<Gateway::KeyQuota> Gateway::quotas() const {
  const auto state = key_state();
  std::vector<KeyQuota> out;
  for (std::size_t i = 0; i < state->quotas.size(); ++i) {
    if (state->quotas[i]) out.push_back({state->store.keys()[i].name, state->quotas[i]});
  }
  return out;
}

std::size_t Gateway::key_count() const {
  return key_state()->store.keys().size();
}

void Gateway::set_draining(bool draining) {
  draining_.store(draining, std::memory_order_relaxed);
}

Admission Gateway::reject(AdmissionStatus status, std::string message, Tier tier,
                          std::string key_name, int retry_after_s) {
  metrics_->rejected[static_cast<std::size_t>(status)]->inc();
  if (status == AdmissionStatus::unauthorized) metrics_->unauthorized.inc();
  if (status == AdmissionStatus::rate_limited)
    metrics_->rate_limited[static_cast<std::size_t>(tier)]->inc();
  Admission a;
  a.status = status;
  a.message = std::move(message);
  a.tier = tier;
  a.key_name = std::move(key_name);
  a.retry_after_s = retry_after_s;
  return a;
}

Admission Gateway::admit(std::optional<std::string_view> authorization_header,
                         bool route_requires_auth) {
  if (!route_requires_auth) return Admission{};  // operational routes are never rejected

  if (draining())
    return reject(AdmissionStatus::overloaded,
                  "The server is shutting down; retry the request shortly.", Tier::standard, {}, 1);

  Tier tier = Tier::standard;
  std::string key_name;
  std::shared_ptr<TokenBucket> bucket;
  std::shared_ptr<RequestQuota> quota;
  if (auth_enabled()) {
    if (!authorization_header)
      return reject(AdmissionStatus::unauthorized,
                    "Missing API key. Send it as 'Authorization: Bearer <key>'.", tier, {}, 0);
    const auto token = parse_bearer_token(*authorization_header);
    if (!token)
      return reject(AdmissionStatus::unauthorized,
                    "Malformed Authorization header. Expected 'Authorization: Bearer <key>'.", tier,
                    {}, 0);
    const auto state = key_state();
    const auto index = state->store.find(*token);
    if (!index) return reject(AdmissionStatus::unauthorized, "Invalid API key.", tier, {}, 0);
    const ApiKey& key = state->store.keys()[*index];
    tier = key.tier;
    key_name = key.name;
    bucket = state->buckets[*index];
    quota = state->quotas[*index];
  }

  InFlightPermit permit = limiter_.try_acquire();
  if (!permit)
    return reject(AdmissionStatus::overloaded,
                  fmt::format("The server is at capacity ({} requests in flight); retry shortly.",
                              limiter_.max_in_flight()),
                  tier, std::move(key_name), 1);

  const auto now = clock_.now();
  if (quota) {
    if (const auto wait = quota->try_take(now)) {
      const int retry = retry_after_seconds(*wait);
      std::string message = fmt::format(
          "Quota exceeded for API key '{}' ({} requests per {} s window). "
          "The quota renews in {} s.",
          key_name, quota->limit(),
          std::chrono::duration_cast<std::chrono::seconds>(quota->window()).count(), retry);
      return reject(AdmissionStatus::quota_exceeded, std::move(message), tier,
                    std::move(key_name), retry);
    }
  }
  if (bucket) {
    if (const auto wait = bucket->try_take(now)) {
      if (quota) quota->give_back(now);
      const int retry = retry_after_seconds(*wait);
      // Built before the call: argument evaluation order would let key_name be moved first.
      std::string message = fmt::format(
          "Rate limit exceeded for API key '{}' ({} requests/s, burst {}). "
          "Retry after {} s.",
          key_name, bucket->rate_per_s(), bucket->burst(), retry);
      return reject(AdmissionStatus::rate_limited, std::move(message), tier, std::move(key_name),
                    retry);
    }
  }

  metrics_->admitted[static_cast<std::size_t>(tier)]->inc();
  Admission a;
  a.tier = tier;
  a.key_name = std::move(key_name);
  a.permit = std::move(permit);
  return a;
}

}  // namespace talkserve::gateway
