#include <catch2/catch.hpp>

#include "engine_test_support.hpp"
#include "fake_model_runner.hpp"
#include "talkserve/llm/engine_core.hpp"
#include "talkserve/llm/engine_metrics.hpp"
#include "talkserve/sched/clock.hpp"

using namespace talkserve;
using namespace talkserve::llm;
using namespace talkserve::llm::testing;
using namespace std::chrono_literals;

TEST_CASE("engine metrics: stats and timings reach the Prometheus registry", "[llm][metrics]") {
  obs::MetricsRegistry registry;
  EngineMetrics metrics(registry, "fake", 1 << 20);
  FakeModelRunner runner({});
  sched::ManualClock clock;
  EngineConfig cfg;
  EngineCore core(runner, cfg, clock, {}, &metrics);
  EventLog log;
  const auto prompt = make_prompt(12, 1, 64);
  REQUIRE(core.add_request(1, greedy_request(prompt, 4, log)).empty());
  REQUIRE(core.add_request(2, greedy_request(prompt, 4, log)).empty());
  core.step();
  // Mid-flight gauges.
  CHECK(registry.gauge("talkserve_num_requests_running", "", {{"model_name", "fake"}}).value() == 2);
  const double usage = registry.gauge("talkserve_kv_cache_usage_perc", "", {{"model_name", "fake"}}).value();
  CHECK(usage > 0);
  CHECK(registry.gauge("talkserve_kv_cache_bytes", "", {{"model_name", "fake"}}).value() == 1 << 20);
  CHECK(registry.gauge("talkserve_kv_cache_used_bytes", "", {{"model_name", "fake"}}).value() ==
        Approx(usage * (1 << 20)));
  while (core.has_work()) {
    clock.advance(10ms);
    core.step();
  }
  auto counter = [&](const char* name) {
    return registry.counter(name, "", {{"model_name", "fake"}}).value();
  };
  CHECK(counter("talkserve_prompt_tokens_total") == 24);
  CHECK(counter("talkserve_generation_tokens_total") == 8);
  CHECK(counter("talkserve_prefix_cache_queries_total") == 24);
  CHECK(counter("talkserve_num_preemptions_total") == 0);
  CHECK(registry.gauge("talkserve_num_requests_running", "", {{"model_name", "fake"}}).value() == 0);
  CHECK(registry.gauge("talkserve_kv_cache_used_bytes", "", {{"model_name", "fake"}}).value() == 0);
  auto& itl = registry.histogram("talkserve_inter_token_latency_seconds", "",
                                 obs::exponential_buckets(0.0005, 2.0, 16),
                                 {{"model_name", "fake"}});
  CHECK(itl.count() == 6);
  CHECK(itl.sum() == Approx(0.06));
  const std::string text = registry.render_prometheus();
  for (const char* name :
       {"talkserve_num_requests_waiting", "talkserve_prefix_cache_hits_total",
        "talkserve_time_to_first_token_seconds_bucket", "talkserve_e2e_request_latency_seconds_count",
        "talkserve_request_queue_time_seconds_sum",
        "talkserve_request_success_total{finished_reason=\"length\",model_name=\"fake\"} 2"})
    CHECK_THAT(text, Catch::Contains(name));
}
