// Per-key request quotas: a fixed number of admitted requests per window (a day by default),
// per tier or per key, 429 quota_exceeded with Retry-After to the window's end. Time is a
// ManualClock, so every boundary is exact.

#include <catch2/catch.hpp>
#include <chrono>
#include <sstream>
#include <string>

#include "talkserve/gateway/gateway.hpp"
#include "talkserve/gateway/keys_file.hpp"
#include "talkserve/gateway/request_quota.hpp"
#include "talkserve/obs/metrics.hpp"
#include "talkserve/sched/clock.hpp"

using namespace talkserve;
using namespace talkserve::gateway;
using namespace std::chrono_literals;

namespace {

// A generous bucket, so only the quota refuses.
ApiKeyConfig key(std::string name, std::string secret, Tier tier,
                 std::optional<std::uint64_t> per_day = std::nullopt) {
  ApiKeyConfig k{std::move(name), std::move(secret), "", tier, 1000.0, 1000.0, std::nullopt};
  k.requests_per_day = per_day;
  return k;
}

bool has_line(const obs::MetricsRegistry& m, const std::string& line) {
  return m.render_prometheus().find(line + "\n") != std::string::npos;
}

}  // namespace

TEST_CASE("request quota: fixed windows from the origin", "[gateway][quota]") {
  const sched::Clock::time_point origin{100s};
  RequestQuota q(3, 24h, origin);
  for (int i = 0; i < 3; ++i) CHECK_FALSE(q.try_take(origin + 1h));
  CHECK(q.used(origin + 1h) == 3);
  auto wait = q.try_take(origin + 1h);
  REQUIRE(wait);
  CHECK(*wait == 23h);  // to the window's end, not a sliding day
  CHECK(q.used(origin + 1h) == 3);  // a refusal is not counted

  CHECK(q.try_take(origin + 24h - 1ns));
  CHECK_FALSE(q.try_take(origin + 24h));  // the next window starts whole
  CHECK(q.used(origin + 24h) == 1);
  q.give_back(origin + 24h);
  CHECK(q.used(origin + 24h) == 0);
  // Skipping windows: two days idle, still a whole quota.
  for (int i = 0; i < 3; ++i) CHECK_FALSE(q.try_take(origin + 72h + 5s));
  CHECK(*q.try_take(origin + 72h + 5s) == 24h - 5s);

  CHECK_THROWS_AS(RequestQuota(0, 24h, origin), std::invalid_argument);
  CHECK_THROWS_AS(RequestQuota(1, 0s, origin), std::invalid_argument);
}

TEST_CASE("gateway: over the daily quota is 429 quota_exceeded until the window ends",
          "[gateway][quota]") {
  sched::ManualClock clock(sched::Clock::time_point{1000s});
  obs::MetricsRegistry metrics;
  GatewayConfig cfg;
  cfg.standard.requests_per_day = 2;  // tier default
  cfg.keys.push_back(key("alice", "sk-alice", Tier::standard));
  cfg.keys.push_back(key("bob", "sk-bob", Tier::standard, 5));    // own quota
  cfg.keys.push_back(key("vip", "sk-vip", Tier::vip));            // vip tier: no quota
  Gateway gw(cfg, clock, metrics);

  clock.advance(6h);
  CHECK(gw.admit("Bearer sk-alice", true).ok());
  CHECK(gw.admit("Bearer sk-alice", true).ok());
  auto over = gw.admit("Bearer sk-alice", true);
  CHECK(over.status == AdmissionStatus::quota_exceeded);
  CHECK(over.http_status() == 429);
  CHECK(over.error_code() == "quota_exceeded");
  CHECK(over.retry_after_s == 18 * 3600);  // the day started when the gateway did
  CHECK(over.key_name == "alice");
  CHECK(over.message.find("alice") != std::string::npos);
  CHECK(over.message.find("2 requests per 86400 s") != std::string::npos);
  CHECK_FALSE(over.permit.holds_slot());
  CHECK(gw.in_flight() == 0);

  for (int i = 0; i < 5; ++i) CHECK(gw.admit("Bearer sk-bob", true).ok());
  CHECK(gw.admit("Bearer sk-bob", true).status == AdmissionStatus::quota_exceeded);
  for (int i = 0; i < 50; ++i) CHECK(gw.admit("Bearer sk-vip", true).ok());
  // Exempt routes never count.
  CHECK(gw.admit(std::nullopt, false).ok());

  clock.advance(18h - 1s);
  auto still = gw.admit("Bearer sk-alice", true);
  CHECK(still.status == AdmissionStatus::quota_exceeded);
  CHECK(still.retry_after_s == 1);
  clock.advance(1s);
  CHECK(gw.admit("Bearer sk-alice", true).ok());
  CHECK(gw.admit("Bearer sk-bob", true).ok());
  CHECK(has_line(metrics, "talkserve_admission_rejected_total{reason=\"quota_exceeded\"} 3"));
}

TEST_CASE("gateway: a rate-limited request costs no quota", "[gateway][quota]") {
  sched::ManualClock clock;
  obs::MetricsRegistry metrics;
  GatewayConfig cfg;
  ApiKeyConfig k{"carol", "sk-carol", "", Tier::standard, 1.0, 1.0, std::nullopt};
  k.requests_per_day = 2;
  cfg.keys.push_back(k);
  Gateway gw(cfg, clock, metrics);
  CHECK(gw.admit("Bearer sk-carol", true).ok());
  for (int i = 0; i < 10; ++i)
    CHECK(gw.admit("Bearer sk-carol", true).status == AdmissionStatus::rate_limited);
  clock.advance(1s);
  CHECK(gw.admit("Bearer sk-carol", true).ok());  // the second of two
  clock.advance(1s);
  CHECK(gw.admit("Bearer sk-carol", true).status == AdmissionStatus::quota_exceeded);
}

TEST_CASE("gateway: a quota window of an hour, and reload keeps the count", "[gateway][quota]") {
  sched::ManualClock clock;
  obs::MetricsRegistry metrics;
  GatewayConfig cfg;
  cfg.quota_window = 1h;
  cfg.keys.push_back(key("dave", "sk-dave", Tier::batch, 1));
  Gateway gw(cfg, clock, metrics);
  CHECK(gw.admit("Bearer sk-dave", true).ok());
  gw.reload_keys();  // SIGHUP must not hand out a fresh quota
  auto over = gw.admit("Bearer sk-dave", true);
  CHECK(over.status == AdmissionStatus::quota_exceeded);
  CHECK(over.retry_after_s == 3600);
  clock.advance(1h);
  CHECK(gw.admit("Bearer sk-dave", true).ok());

  GatewayConfig bad;
  bad.quota_window = 0s;
  CHECK_THROWS_WITH(bad.validate(), "gateway.quota_window_s must be > 0");
}

TEST_CASE("keys file: an optional sixth field sets the key's quota", "[gateway][quota][keys]") {
  GatewayConfig cfg;
  cfg.batch.requests_per_day = 7;
  std::istringstream in(
      "a standard key:sk-a 1 2 100\n"
      "b batch key:sk-b\n"
      "c vip key:sk-c 1 2 0\n");
  auto keys = parse_keys_file(in, "keys", cfg);
  REQUIRE(keys.size() == 3);
  CHECK(keys[0].requests_per_day == 100);
  CHECK(keys[1].requests_per_day == 7);  // the tier's
  CHECK(keys[2].requests_per_day == 0);
  std::istringstream bad("a standard key:sk-a 1 2 -5\n");
  CHECK_THROWS_WITH(parse_keys_file(bad, "keys", cfg),
                    Catch::Contains("keys:1: requests_per_day '-5' must be a whole number"));
  std::istringstream four("a standard key:sk-a 1\n");
  CHECK_THROWS_WITH(parse_keys_file(four, "keys", cfg), Catch::Contains("got 4 fields"));
}

TEST_CASE("request quota: a shared count adds the other replicas' requests", "[gateway][quota]") {
  const sched::Clock::time_point origin{0s};
  const auto t = origin + 1h;
  RequestQuota q(5, 24h, origin);
  CHECK_FALSE(q.try_take(t));
  CHECK_FALSE(q.try_take(t));

  // First exchange: this replica's 2 go to the shared counter, which other replicas had
  // brought to 1 already.
  auto u = q.take_unsynced(t);
  CHECK(u.window == 0);
  CHECK(u.count == 2);
  q.apply_shared(u.window, 3);
  CHECK(q.used(t) == 2);
  CHECK(q.used_shared(t) == 3);
  CHECK(q.take_unsynced(t).count == 0);  // nothing new

  // 2 more fit (3 + 2 = 5), the next is refused.
  CHECK_FALSE(q.try_take(t));
  CHECK_FALSE(q.try_take(t));
  CHECK(q.try_take(t));
  CHECK(q.used_shared(t) == 5);

  // A failed exchange keeps its count for the next one; a give_back after an exchange makes
  // the next count negative.
  u = q.take_unsynced(t);
  CHECK(u.count == 2);
  q.restore_unsynced(u);
  q.give_back(t);
  u = q.take_unsynced(t);
  CHECK(u.count == 1);
  // Meanwhile the others admitted 1 more: the total is 3 (before) + 1 (ours) + 1.
  q.apply_shared(u.window, 5);
  CHECK(q.used_shared(t) == 5);
  CHECK(q.try_take(t));

  // An answer for a window that is over is dropped, and a new window forgets the others.
  const auto next = origin + 24h + 1s;
  u = q.take_unsynced(next);
  CHECK(u.window == 1);
  CHECK(u.count == 0);
  q.apply_shared(0, 100);
  CHECK(q.used_shared(next) == 0);
  q.apply_shared(1, 4);  // the others used 4 of the new window already
  CHECK_FALSE(q.try_take(next));
  CHECK(q.try_take(next));
  CHECK(q.used_shared(next) == 5);
}

TEST_CASE("gateway: quota windows start the given phase before the gateway", "[gateway][quota]") {
  sched::ManualClock clock(sched::Clock::time_point{1000s});
  obs::MetricsRegistry metrics;
  GatewayConfig cfg;
  cfg.keys.push_back(key("alice", "sk-alice", Tier::standard, 1));
  cfg.keys.push_back(key("bob", "sk-bob", Tier::standard));  // no quota
  // The server passes the time since 00:00 UTC: here the day is 20 h old.
  Gateway gw(cfg, clock, metrics, 20h);
  CHECK(gw.admit("Bearer sk-alice", true).ok());
  auto over = gw.admit("Bearer sk-alice", true);
  CHECK(over.status == AdmissionStatus::quota_exceeded);
  CHECK(over.retry_after_s == 4 * 3600);
  clock.advance(4h);
  CHECK(gw.admit("Bearer sk-alice", true).ok());

  const auto quotas = gw.quotas();
  REQUIRE(quotas.size() == 1);
  CHECK(quotas[0].key_name == "alice");
  CHECK(quotas[0].quota->used(clock.now()) == 1);
}
