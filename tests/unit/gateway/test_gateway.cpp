#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "talkserve/gateway/gateway.hpp"
#include "talkserve/obs/metrics.hpp"
#include "talkserve/sched/clock.hpp"

using namespace talkserve;
using namespace talkserve::gateway;
using namespace std::chrono_literals;

namespace {

GatewayConfig two_keys() {
  GatewayConfig cfg;
  cfg.keys.push_back({"alice", "sk-alice", "", Tier::vip, 2.0, 3.0, {}});
  cfg.keys.push_back({"bob", "", sha256_hex("sk-bob"), Tier::batch, std::nullopt, std::nullopt, {}});
  return cfg;
}

bool has_line(const obs::MetricsRegistry& m, const std::string& line) {
  return m.render_prometheus().find(line + "\n") != std::string::npos;
}

}  // namespace

TEST_CASE("gateway: auth disabled admits everyone as standard", "[gateway]") {
  sched::ManualClock clock;
  obs::MetricsRegistry metrics;
  Gateway gw(GatewayConfig{}, clock, metrics);
  CHECK_FALSE(gw.auth_enabled());
  auto a = gw.admit(std::nullopt, true);
  CHECK(a.ok());
  CHECK(a.http_status() == 200);
  CHECK(a.tier == Tier::standard);
  CHECK(a.key_name.empty());
  CHECK(a.permit.holds_slot());
  CHECK(gw.in_flight() == 1);
  CHECK(gw.admit("garbage", true).ok());  // a header is ignored when auth is off
  CHECK(has_line(metrics, "talkserve_in_flight_requests 1"));
  a.permit.release();
  CHECK(gw.in_flight() == 0);
  CHECK(has_line(metrics, "talkserve_admitted_total{tier=\"standard\"} 2"));
}

TEST_CASE("gateway: 401 for missing, malformed and wrong keys", "[gateway]") {
  sched::ManualClock clock;
  obs::MetricsRegistry metrics;
  Gateway gw(two_keys(), clock, metrics);
  REQUIRE(gw.auth_enabled());
  REQUIRE(gw.key_count() == 2);

  const auto missing = gw.admit(std::nullopt, true);
  CHECK(missing.status == AdmissionStatus::unauthorized);
  CHECK(missing.http_status() == 401);
  CHECK(missing.error_code() == "invalid_api_key");
  CHECK(missing.message.find("Missing API key") != std::string::npos);
  CHECK_FALSE(missing.permit.holds_slot());

  for (const char* h : {"", "sk-alice", "Basic sk-alice", "Bearer", "Bearer ", "Bearersk-alice",
                        "Bearer sk-alice extra",
                        "Bearer sk-\x01z"}) {
    INFO(h);
    const auto a = gw.admit(h, true);
    CHECK(a.status == AdmissionStatus::unauthorized);
    CHECK(a.message.find("Malformed") != std::string::npos);
  }
  const auto wrong = gw.admit("Bearer sk-alicf", true);
  CHECK(wrong.status == AdmissionStatus::unauthorized);
  CHECK(wrong.message == "Invalid API key.");
  CHECK(gw.in_flight() == 0);
  CHECK(has_line(metrics, "talkserve_unauthorized_total 10"));
  CHECK(has_line(metrics, "talkserve_admission_rejected_total{reason=\"unauthorized\"} 10"));
}

TEST_CASE("gateway: a correct key gets its tier", "[gateway]") {
  sched::ManualClock clock;
  obs::MetricsRegistry metrics;
  Gateway gw(two_keys(), clock, metrics);
  const auto a = gw.admit("Bearer sk-alice", true);
  REQUIRE(a.ok());
  CHECK(a.tier == Tier::vip);
  CHECK(a.key_name == "alice");
  const auto b = gw.admit("  bEaReR \t sk-bob ", true);  // scheme case-insensitive, OWS ok
  REQUIRE(b.ok());
  CHECK(b.tier == Tier::batch);
  CHECK(b.key_name == "bob");
  CHECK(gw.in_flight() == 2);
  CHECK(has_line(metrics, "talkserve_admitted_total{tier=\"vip\"} 1"));
  CHECK(has_line(metrics, "talkserve_admitted_total{tier=\"batch\"} 1"));
}

TEST_CASE("gateway: exempt routes need no key and are never rejected", "[gateway]") {
  sched::ManualClock clock;
  obs::MetricsRegistry metrics;
  auto cfg = two_keys();
  cfg.max_in_flight = 1;
  Gateway gw(cfg, clock, metrics);
  auto held = gw.admit("Bearer sk-alice", true);
  REQUIRE(held.ok());
  gw.set_draining(true);
  const auto a = gw.admit(std::nullopt, false);
  CHECK(a.ok());
  CHECK(a.tier == Tier::standard);
  CHECK_FALSE(a.permit.holds_slot());
  CHECK(gw.admit("Bearer wrong", false).ok());
}

TEST_CASE("gateway: token bucket gives 429 with Retry-After, then refills", "[gateway]") {
  sched::ManualClock clock;
  obs::MetricsRegistry metrics;
  Gateway gw(two_keys(), clock, metrics);  // alice: 2/s, burst 3
  for (int i = 0; i < 3; ++i) CHECK(gw.admit("Bearer sk-alice", true).ok());
  auto limited = gw.admit("Bearer sk-alice", true);
  CHECK(limited.status == AdmissionStatus::rate_limited);
  CHECK(limited.http_status() == 429);
  CHECK(limited.retry_after_s == 1);  // 500 ms, rounded up
  CHECK(limited.tier == Tier::vip);
  CHECK(limited.key_name == "alice");
  CHECK(limited.error_code() == "rate_limit_exceeded");
  CHECK(limited.message.find("alice") != std::string::npos);
  CHECK_FALSE(limited.permit.holds_slot());
  CHECK(gw.in_flight() == 0);  // the rejected request released its slot

  // Other keys have their own buckets.
  CHECK(gw.admit("Bearer sk-bob", true).ok());

  clock.advance(499ms);
  CHECK(gw.admit("Bearer sk-alice", true).status == AdmissionStatus::rate_limited);
  clock.advance(1ms);
  CHECK(gw.admit("Bearer sk-alice", true).ok());
  CHECK(gw.admit("Bearer sk-alice", true).status == AdmissionStatus::rate_limited);
  clock.advance(1s);  // two more tokens
  CHECK(gw.admit("Bearer sk-alice", true).ok());
  CHECK(gw.admit("Bearer sk-alice", true).ok());
  CHECK_FALSE(gw.admit("Bearer sk-alice", true).ok());

  CHECK(has_line(metrics, "talkserve_rate_limited_total{tier=\"vip\"} 4"));
  CHECK(has_line(metrics, "talkserve_rate_limited_total{tier=\"batch\"} 0"));
  CHECK(has_line(metrics, "talkserve_admission_rejected_total{reason=\"rate_limited\"} 4"));
}

TEST_CASE("gateway: Retry-After rounds a long wait up to whole seconds", "[gateway]") {
  sched::ManualClock clock;
  obs::MetricsRegistry metrics;
  GatewayConfig cfg;
  cfg.keys.push_back({"slow", "sk-slow", "", Tier::batch, 0.4, 1.0, std::nullopt});  // one per 2.5 s
  Gateway gw(cfg, clock, metrics);
  CHECK(gw.admit("Bearer sk-slow", true).ok());
  CHECK(gw.admit("Bearer sk-slow", true).retry_after_s == 3);
  clock.advance(2s);
  CHECK(gw.admit("Bearer sk-slow", true).retry_after_s == 1);
  clock.advance(500ms);
  CHECK(gw.admit("Bearer sk-slow", true).ok());
}

TEST_CASE("gateway: in-flight bound gives 503 until a permit is released", "[gateway]") {
  sched::ManualClock clock;
  obs::MetricsRegistry metrics;
  auto cfg = two_keys();
  cfg.max_in_flight = 2;
  cfg.keys[0].burst = 100;
  Gateway gw(cfg, clock, metrics);
  auto first = gw.admit("Bearer sk-alice", true);
  auto second = gw.admit("Bearer sk-bob", true);
  REQUIRE(first.ok());
  REQUIRE(second.ok());
  const auto over = gw.admit("Bearer sk-alice", true);
  CHECK(over.status == AdmissionStatus::overloaded);
  CHECK(over.http_status() == 503);
  CHECK(over.retry_after_s == 1);
  CHECK(over.error_code() == "server_overloaded");
  CHECK(has_line(metrics, "talkserve_in_flight_requests 2"));
  CHECK(has_line(metrics, "talkserve_max_in_flight_requests 2"));

  {
    InFlightPermit moved = std::move(first.permit);  // move-only, ownership travels
    CHECK_FALSE(first.permit.holds_slot());
    CHECK(gw.in_flight() == 2);
  }  // destroyed here
  CHECK(gw.in_flight() == 1);
  auto third = gw.admit("Bearer sk-alice", true);
  CHECK(third.ok());
  CHECK(gw.admit("Bearer sk-alice", true).status == AdmissionStatus::overloaded);
  CHECK(has_line(metrics, "talkserve_admission_rejected_total{reason=\"overloaded\"} 2"));
}

TEST_CASE("gateway: draining rejects API routes with 503", "[gateway]") {
  sched::ManualClock clock;
  obs::MetricsRegistry metrics;
  Gateway gw(GatewayConfig{}, clock, metrics);
  gw.set_draining(true);
  const auto a = gw.admit(std::nullopt, true);
  CHECK(a.status == AdmissionStatus::overloaded);
  CHECK(a.retry_after_s >= 1);
  gw.set_draining(false);
  CHECK(gw.admit(std::nullopt, true).ok());
}

TEST_CASE("gateway: reload_keys swaps keys and keeps unchanged buckets", "[gateway]") {
  const char* dir = std::getenv("TALKSERVE_BINARY_DIR");
  const auto path = (dir ? std::filesystem::path(dir) : std::filesystem::temp_directory_path()) /
                    ("gw-reload-" + std::to_string(::getpid()));
  std::ofstream(path) << "alice vip key:sk-alice 1 1\n";
  sched::ManualClock clock;
  obs::MetricsRegistry metrics;
  GatewayConfig cfg;
  cfg.keys_file = path.string();
  Gateway gw(cfg, clock, metrics);
  CHECK(gw.admit("Bearer sk-alice", true).ok());
  CHECK(gw.admit("Bearer sk-alice", true).status == AdmissionStatus::rate_limited);

  std::ofstream(path) << "alice vip key:sk-alice 1 1\ncarol batch key:sk-carol\n";
  gw.reload_keys();
  CHECK(gw.key_count() == 2);
  CHECK(gw.admit("Bearer sk-carol", true).ok());
  // alice's bucket survived the reload: still empty.
  CHECK(gw.admit("Bearer sk-alice", true).status == AdmissionStatus::rate_limited);

  std::ofstream(path) << "carol batch key:sk-carol\nbroken line\n";
  CHECK_THROWS_WITH(gw.reload_keys(), Catch::Contains(":2:"));
  CHECK(gw.key_count() == 2);  // old keys kept

  std::ofstream(path) << "# everyone revoked\n";
  gw.reload_keys();
  CHECK(gw.key_count() == 0);
  CHECK(gw.admit("Bearer sk-carol", true).status == AdmissionStatus::unauthorized);  // fail closed
  std::filesystem::remove(path);
}

TEST_CASE("gateway: invalid config is rejected at construction", "[gateway]") {
  sched::ManualClock clock;
  obs::MetricsRegistry metrics;
  GatewayConfig cfg;
  cfg.max_in_flight = 0;
  CHECK_THROWS_WITH(Gateway(cfg, clock, metrics), "gateway.max_in_flight must be > 0");
}

TEST_CASE("gateway: concurrent admits respect the bucket and the bound exactly", "[gateway]") {
  sched::ManualClock clock;
  obs::MetricsRegistry metrics;
  GatewayConfig cfg;
  cfg.keys.push_back({"alice", "sk-alice", "", Tier::vip, 1.0, 500.0, {}});
  cfg.max_in_flight = 300;
  Gateway gw(cfg, clock, metrics);
  std::atomic<int> ok{0}, limited{0}, overloaded{0};
  std::vector<std::vector<Admission>> kept(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 250; ++i) {
        auto a = gw.admit("Bearer sk-alice", true);
        if (a.ok()) {
          ++ok;
          kept[t].push_back(std::move(a));  // keep the slot
        } else if (a.status == AdmissionStatus::rate_limited) {
          ++limited;
        } else if (a.status == AdmissionStatus::overloaded) {
          ++overloaded;
        }
      }
    });
  for (auto& th : threads) th.join();
  CHECK(ok.load() == 300);  // the in-flight bound is hit before the 500-token burst
  CHECK(overloaded.load() == 700);
  CHECK(limited.load() == 0);
  CHECK(gw.in_flight() == 300);
  kept.clear();
  CHECK(gw.in_flight() == 0);
  CHECK(has_line(metrics, "talkserve_in_flight_requests 0"));
}
