#include <catch2/catch.hpp>
#include <stdexcept>
#include <thread>
#include <vector>

#include "talkserve/obs/metrics.hpp"

using namespace talkserve::obs;

TEST_CASE("metrics: exact exposition text for a small registry", "[obs][metrics]") {
  MetricsRegistry r;
  r.counter("talkserve_requests_total", "Requests seen.", {{"tier", "vip"}}).inc(3);
  r.counter("talkserve_requests_total", "ignored help", {{"tier", "batch"}}).inc();
  r.gauge("talkserve_in_flight_requests", "Requests in flight.").set(2);
  auto& h =
      r.histogram("talkserve_latency_seconds", "Latency.", {0.125, 0.5, 1}, {{"route", "chat"}});
  h.observe(0.0625);
  h.observe(0.125);  // equal to a bound: counts in that bucket (le)
  h.observe(0.75);
  h.observe(3);
  int depth = 7;
  r.callback_gauge("talkserve_queue_depth", "Queued requests.", {{"executor", "llm"}},
                   [&] { return double(depth); });

  const std::string expected =
      "# HELP talkserve_in_flight_requests Requests in flight.\n"
      "# TYPE talkserve_in_flight_requests gauge\n"
      "talkserve_in_flight_requests 2\n"
      "# HELP talkserve_latency_seconds Latency.\n"
      "# TYPE talkserve_latency_seconds histogram\n"
      "talkserve_latency_seconds_bucket{route=\"chat\",le=\"0.125\"} 2\n"
      "talkserve_latency_seconds_bucket{route=\"chat\",le=\"0.5\"} 2\n"
      "talkserve_latency_seconds_bucket{route=\"chat\",le=\"1\"} 3\n"
      "talkserve_latency_seconds_bucket{route=\"chat\",le=\"+Inf\"} 4\n"
      "talkserve_latency_seconds_sum{route=\"chat\"} 3.9375\n"
      "talkserve_latency_seconds_count{route=\"chat\"} 4\n"
      "# HELP talkserve_queue_depth Queued requests.\n"
      "# TYPE talkserve_queue_depth gauge\n"
      "talkserve_queue_depth{executor=\"llm\"} 7\n"
      "# HELP talkserve_requests_total Requests seen.\n"
      "# TYPE talkserve_requests_total counter\n"
      "talkserve_requests_total{tier=\"batch\"} 1\n"
      "talkserve_requests_total{tier=\"vip\"} 3\n";
  CHECK(r.render_prometheus() == expected);

  depth = 9;  // callback gauges are read at scrape time
  CHECK(r.render_prometheus().find("talkserve_queue_depth{executor=\"llm\"} 9\n") !=
        std::string::npos);
  r.remove_callback_gauge("talkserve_queue_depth", {{"executor", "llm"}});
  CHECK(r.render_prometheus().find("talkserve_queue_depth") == std::string::npos);
}

TEST_CASE("metrics: same name and labels give the same object", "[obs][metrics]") {
  MetricsRegistry r;
  auto& a = r.counter("c_total", "h", {{"a", "1"}, {"b", "2"}});
  auto& b = r.counter("c_total", "h", {{"b", "2"}, {"a", "1"}});  // order does not matter
  auto& c = r.counter("c_total", "h", {{"a", "1"}, {"b", "3"}});
  CHECK(&a == &b);
  CHECK(&a != &c);
  // A reference stays valid while the family grows.
  for (int i = 0; i < 1000; ++i) r.counter("c_total", "h", {{"a", std::to_string(i)}});
  a.inc(2);
  CHECK(r.counter("c_total", "h", {{"a", "1"}, {"b", "2"}}).value() == 2);
}

TEST_CASE("metrics: type conflicts and invalid names are rejected", "[obs][metrics]") {
  MetricsRegistry r;
  r.counter("x_total", "h");
  CHECK_THROWS_AS(r.gauge("x_total", "h"), std::invalid_argument);
  CHECK_THROWS_AS(r.histogram("x_total", "h", {1}), std::invalid_argument);
  CHECK_THROWS_AS(r.counter("bad-name", "h"), std::invalid_argument);
  CHECK_THROWS_AS(r.counter("1abc", "h"), std::invalid_argument);
  CHECK_THROWS_AS(r.counter("ok_total", "h", {{"bad-label", "v"}}), std::invalid_argument);
  CHECK_THROWS_AS(r.counter("ok_total", "h", {{"__reserved", "v"}}), std::invalid_argument);
  CHECK_THROWS_AS(r.counter("ok_total", "h", {{"a", "1"}, {"a", "2"}}), std::invalid_argument);
  CHECK_THROWS_AS(r.histogram("h_seconds", "h", {1, 1}), std::invalid_argument);
  CHECK_THROWS_AS(r.histogram("h_seconds", "h", {1}, {{"le", "x"}}), std::invalid_argument);
  r.histogram("h2_seconds", "h", {1, 2});
  CHECK_THROWS_AS(r.histogram("h2_seconds", "h", {1, 3}), std::invalid_argument);
  r.gauge("g", "h");
  CHECK_THROWS_AS(r.callback_gauge("g", "h", {}, [] { return 1.0; }), std::invalid_argument);
  CHECK_THROWS_AS(r.counter("c2_total", "h").inc(-1), std::invalid_argument);
}

TEST_CASE("metrics: label values and help are escaped", "[obs][metrics]") {
  MetricsRegistry r;
  r.counter("esc_total", "line1\nback\\slash \"quoted\"", {{"v", "a\"b\\c\nd"}}).inc();
  const std::string expected =
      "# HELP esc_total line1\\nback\\\\slash \"quoted\"\n"
      "# TYPE esc_total counter\n"
      "esc_total{v=\"a\\\"b\\\\c\\nd\"} 1\n";
  CHECK(r.render_prometheus() == expected);
}

TEST_CASE("metrics: value formatting", "[obs][metrics]") {
  CHECK(format_metric_value(0) == "0");
  CHECK(format_metric_value(42) == "42");
  CHECK(format_metric_value(0.005) == "0.005");
  CHECK(format_metric_value(1.0 / 0.0) == "+Inf");
  CHECK(format_metric_value(-1.0 / 0.0) == "-Inf");
  CHECK(format_metric_value(std::nan("")) == "NaN");
  CHECK(exponential_buckets(1, 2, 4) == std::vector<double>{1, 2, 4, 8});
  const auto& d = default_latency_buckets();
  CHECK(std::is_sorted(d.begin(), d.end()));
}

TEST_CASE("metrics: concurrent updates give exact totals", "[obs][metrics]") {
  MetricsRegistry r;
  constexpr int kThreads = 4;
  constexpr int kIters = 50000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&r, t] {
      // Registration races with other threads' registration and updates.
      auto& c = r.counter("hits_total", "h");
      auto& g = r.gauge("level", "h");
      auto& h = r.histogram("obs_seconds", "h", {0.5});
      for (int i = 0; i < kIters; ++i) {
        c.inc();
        g.inc();
        g.dec(0.5);
        h.observe((i + t) % 2 ? 1.0 : 0.25);
        if (i % 5000 == 0) (void)r.render_prometheus();
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(r.counter("hits_total", "h").value() == kThreads * kIters);
  CHECK(r.gauge("level", "h").value() == kThreads * kIters * 0.5);
  auto& h = r.histogram("obs_seconds", "h", {0.5});
  CHECK(h.count() == std::uint64_t(kThreads) * kIters);
  CHECK(h.bucket_count(0) == std::uint64_t(kThreads) * kIters / 2);
  CHECK(h.sum() == kThreads * kIters / 2 * 1.25);
}
