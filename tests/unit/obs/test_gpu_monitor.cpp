// ResourceMonitor with a fake GPU provider and an injected RSS reader (every sample taken by
// an explicit sample() call), and the NVML provider against a fake libnvidia-ml built by the
// tests, loaded through the real dlopen path.

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include "talkserve/obs/gpu_monitor.hpp"
#include "talkserve/obs/metrics.hpp"

using namespace talkserve::obs;
using Catch::Contains;

namespace {

constexpr std::uint64_t kGiB = 1ull << 30;

// What the fake GPUs report next; the test changes it between samples.
struct FakeGpus {
  std::vector<GpuSample> next;
  bool fail = false;
};

class FakeGpuProvider final : public GpuProvider {
 public:
  explicit FakeGpuProvider(std::shared_ptr<FakeGpus> state) : state_(std::move(state)) {}
  std::string description() const override { return "fake"; }
  std::vector<GpuSample> sample() override {
    if (state_->fail) throw std::runtime_error("fake provider failure");
    return state_->next;
  }

 private:
  std::shared_ptr<FakeGpus> state_;
};

GpuSample gpu(unsigned index, double used_gib, double total_gib, double util, double temp) {
  GpuSample s;
  s.index = index;
  s.name = "Fake " + std::to_string(index);
  s.memory_used_bytes = static_cast<std::uint64_t>(used_gib * kGiB);
  s.memory_total_bytes = static_cast<std::uint64_t>(total_gib * kGiB);
  s.utilization = util;
  s.temperature_c = temp;
  return s;
}

double gauge(MetricsRegistry& r, const char* name, Labels labels = {}) {
  return r.gauge(name, "", std::move(labels)).value();
}
double counter(MetricsRegistry& r, const char* name, Labels labels = {}) {
  return r.counter(name, "", std::move(labels)).value();
}

struct Fixture {
  std::shared_ptr<FakeGpus> gpus = std::make_shared<FakeGpus>();
  std::uint64_t rss = 100ull << 20;
  MetricsRegistry registry;

  std::unique_ptr<ResourceMonitor> make(GpuMonitorConfig config, bool with_gpu = true) {
    config.validate();
    std::unique_ptr<GpuProvider> provider;
    if (with_gpu) provider = std::make_unique<FakeGpuProvider>(gpus);
    return std::make_unique<ResourceMonitor>(config, registry, std::move(provider),
                                             [this] { return std::optional(rss); });
  }
};

}  // namespace

TEST_CASE("gpu monitor: gauges carry the provider's readings per GPU", "[obs][gpu]") {
  Fixture f;
  auto monitor = f.make({});
  f.gpus->next = {gpu(0, 4, 16, 0.37, 55), gpu(1, 1, 8, 0.0, 41)};
  monitor->sample();

  CHECK(gauge(f.registry, "talkserve_gpu_memory_used_bytes", {{"gpu", "0"}}) == 4.0 * kGiB);
  CHECK(gauge(f.registry, "talkserve_gpu_memory_total_bytes", {{"gpu", "0"}}) == 16.0 * kGiB);
  CHECK(gauge(f.registry, "talkserve_gpu_utilization_ratio", {{"gpu", "0"}}) == Approx(0.37));
  CHECK(gauge(f.registry, "talkserve_gpu_temperature_celsius", {{"gpu", "0"}}) == 55);
  CHECK(gauge(f.registry, "talkserve_gpu_memory_used_bytes", {{"gpu", "1"}}) == 1.0 * kGiB);
  CHECK(gauge(f.registry, "talkserve_gpu_temperature_celsius", {{"gpu", "1"}}) == 41);
  CHECK(gauge(f.registry, "talkserve_process_resident_memory_bytes") == 100.0 * (1 << 20));
  const std::string text = f.registry.render_prometheus();
  CHECK_THAT(text, Contains("talkserve_gpu_info{gpu=\"1\",name=\"Fake 1\"} 1"));
  CHECK(monitor->has_gpu());
  CHECK_FALSE(monitor->not_ready_reason());

  // The next sample replaces the values; a reading the device lacks keeps the last one.
  auto next = gpu(0, 15, 16, 0.9, 70);
  next.utilization.reset();
  f.gpus->next = {next};
  monitor->sample();
  CHECK(gauge(f.registry, "talkserve_gpu_memory_used_bytes", {{"gpu", "0"}}) == 15.0 * kGiB);
  CHECK(gauge(f.registry, "talkserve_gpu_temperature_celsius", {{"gpu", "0"}}) == 70);
  CHECK(gauge(f.registry, "talkserve_gpu_utilization_ratio", {{"gpu", "0"}}) == Approx(0.37));
  // No thresholds configured: full memory and heat do not affect readiness.
  CHECK_FALSE(monitor->not_ready_reason());
}

TEST_CASE("gpu monitor: memory above the limit marks not ready until below it by the hysteresis",
          "[obs][gpu]") {
  Fixture f;
  GpuMonitorConfig c;
  c.max_memory_fraction = 0.9;
  c.memory_hysteresis = 0.05;
  auto monitor = f.make(c);
  const Labels mem{{"resource", "gpu_memory"}};

  f.gpus->next = {gpu(0, 8, 16, 0.5, 50)};  // 50 %
  monitor->sample();
  CHECK_FALSE(monitor->not_ready_reason());
  CHECK(gauge(f.registry, "talkserve_resource_limit_exceeded", mem) == 0);

  f.gpus->next = {gpu(0, 15.2, 16, 0.5, 50)};  // 95 %
  monitor->sample();
  auto reason = monitor->not_ready_reason();
  REQUIRE(reason);
  CHECK_THAT(*reason, Contains("gpu 0 memory 95.0%"));
  CHECK_THAT(*reason, Contains("gpu.max_memory_fraction 0.9"));
  CHECK(gauge(f.registry, "talkserve_resource_limit_exceeded", mem) == 1);
  CHECK(counter(f.registry, "talkserve_resource_alerts_total", mem) == 1);

  // 88 %: under the limit but inside the hysteresis band (0.85 .. 0.9): still not ready, and
  // the reason shows the current figure; no second alert.
  f.gpus->next = {gpu(0, 14.08, 16, 0.5, 50)};
  monitor->sample();
  reason = monitor->not_ready_reason();
  REQUIRE(reason);
  CHECK_THAT(*reason, Contains("88.0%"));
  CHECK(counter(f.registry, "talkserve_resource_alerts_total", mem) == 1);

  f.gpus->next = {gpu(0, 13.6, 16, 0.5, 50)};  // 85 %: recovered
  monitor->sample();
  CHECK_FALSE(monitor->not_ready_reason());
  CHECK(gauge(f.registry, "talkserve_resource_limit_exceeded", mem) == 0);

  // Entering again is a second alert.
  f.gpus->next = {gpu(0, 16, 16, 0.5, 50)};
  monitor->sample();
  CHECK(monitor->not_ready_reason());
  CHECK(counter(f.registry, "talkserve_resource_alerts_total", mem) == 2);
}

TEST_CASE("gpu monitor: temperature limits per GPU, reasons of several GPUs joined", "[obs][gpu]") {
  Fixture f;
  GpuMonitorConfig c;
  c.max_temperature_c = 85;
  c.temperature_hysteresis_c = 5;
  auto monitor = f.make(c);
  const Labels temp{{"resource", "gpu_temperature"}};

  f.gpus->next = {gpu(0, 1, 16, 0.5, 86), gpu(1, 1, 16, 0.5, 90)};
  monitor->sample();
  auto reason = monitor->not_ready_reason();
  REQUIRE(reason);
  CHECK_THAT(*reason, Contains("gpu 0 temperature 86 C (gpu.max_temperature_c 85)"));
  CHECK_THAT(*reason, Contains("; gpu 1 temperature 90 C"));
  CHECK(gauge(f.registry, "talkserve_resource_limit_exceeded", temp) == 2);

  f.gpus->next = {gpu(0, 1, 16, 0.5, 80), gpu(1, 1, 16, 0.5, 84)};  // GPU 1 in the band
  monitor->sample();
  reason = monitor->not_ready_reason();
  REQUIRE(reason);
  CHECK_THAT(*reason, !Contains("gpu 0"));
  CHECK_THAT(*reason, Contains("gpu 1 temperature 84 C"));

  f.gpus->next = {gpu(0, 1, 16, 0.5, 80), gpu(1, 1, 16, 0.5, 79)};
  monitor->sample();
  CHECK_FALSE(monitor->not_ready_reason());
  CHECK(gauge(f.registry, "talkserve_resource_limit_exceeded", temp) == 0);
}

TEST_CASE("gpu monitor: without a GPU provider only process memory is reported and limited",
          "[obs][gpu]") {
  Fixture f;
  GpuMonitorConfig c;
  c.max_rss_mb = 1000;
  c.memory_hysteresis = 0.1;
  c.max_memory_fraction = 0.5;  // no GPU readings: never applies
  auto monitor = f.make(c, /*with_gpu=*/false);
  CHECK_FALSE(monitor->has_gpu());

  f.rss = 200ull << 20;
  monitor->sample();
  CHECK(gauge(f.registry, "talkserve_process_resident_memory_bytes") == 200.0 * (1 << 20));
  CHECK_FALSE(monitor->not_ready_reason());
  CHECK_THAT(f.registry.render_prometheus(), !Contains("talkserve_gpu_"));

  f.rss = 1200ull << 20;
  monitor->sample();
  auto reason = monitor->not_ready_reason();
  REQUIRE(reason);
  CHECK_THAT(*reason, Contains("process resident memory 1200 MiB (gpu.max_rss_mb 1000)"));
  CHECK(counter(f.registry, "talkserve_resource_alerts_total", {{"resource", "process_memory"}}) ==
        1);

  f.rss = 950ull << 20;  // within 10 % of the limit: not recovered yet
  monitor->sample();
  CHECK(monitor->not_ready_reason());
  f.rss = 850ull << 20;
  monitor->sample();
  CHECK_FALSE(monitor->not_ready_reason());
}

TEST_CASE("gpu monitor: a failing provider keeps the last readings and the verdict", "[obs][gpu]") {
  Fixture f;
  GpuMonitorConfig c;
  c.max_memory_fraction = 0.9;
  auto monitor = f.make(c);
  f.gpus->next = {gpu(0, 15.5, 16, 0.5, 50)};
  monitor->sample();
  REQUIRE(monitor->not_ready_reason());

  f.gpus->fail = true;
  f.rss = 300ull << 20;
  monitor->sample();
  CHECK(gauge(f.registry, "talkserve_gpu_memory_used_bytes", {{"gpu", "0"}}) == 15.5 * kGiB);
  CHECK(monitor->not_ready_reason());
  CHECK(gauge(f.registry, "talkserve_process_resident_memory_bytes") == 300.0 * (1 << 20));

  f.gpus->fail = false;
  f.gpus->next = {gpu(0, 2, 16, 0.5, 50)};
  monitor->sample();
  CHECK_FALSE(monitor->not_ready_reason());
}

TEST_CASE("gpu monitor: start samples at once and stop wakes the sampling thread", "[obs][gpu]") {
  Fixture f;
  GpuMonitorConfig c;
  c.sample_interval = std::chrono::hours(1);
  auto monitor = f.make(c);
  f.gpus->next = {gpu(0, 3, 16, 0.25, 45)};
  monitor->start();
  CHECK(gauge(f.registry, "talkserve_gpu_memory_used_bytes", {{"gpu", "0"}}) == 3.0 * kGiB);
  const auto t0 = std::chrono::steady_clock::now();
  monitor->stop();  // would block for an hour if the thread slept instead of waiting
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10));
  monitor->stop();  // idempotent
}

TEST_CASE("gpu monitor: process_resident_bytes reads this process's RSS", "[obs][gpu]") {
  const auto before = process_resident_bytes();
  REQUIRE(before);
  CHECK(*before > (1u << 20));
  // Touch 64 MiB: resident memory grows by about that much.
  std::vector<char> block(64u << 20);
  std::memset(block.data(), 1, block.size());
  const auto after = process_resident_bytes();
  REQUIRE(after);
  CHECK(*after >= *before + (48u << 20));
  CHECK(block[12345] == 1);
}

TEST_CASE("gpu monitor: the NVML provider through dlopen", "[obs][gpu][nvml]") {
  SECTION("a missing library is reported, not fatal") {
    std::string why;
    auto p = open_nvml_provider("libtalkserve-no-such-nvml.so.1", &why);
    CHECK_FALSE(p);
    CHECK_THAT(why, Contains("libtalkserve-no-such-nvml.so.1"));
  }
  SECTION("a library that is not NVML lacks its symbols") {
    std::string why;
    auto p = open_nvml_provider("libm.so.6", &why);
    CHECK_FALSE(p);
    CHECK_THAT(why, Contains("no symbol nvmlInit_v2"));
  }
  SECTION("nvmlInit_v2 failing (no kernel driver) is reported with NVML's message") {
    std::string why;
    auto p = open_nvml_provider(TALKSERVE_FAKE_NVML_FAIL_INIT_LIB, &why);
    CHECK_FALSE(p);
    CHECK(why == "nvmlInit_v2: Driver Not Loaded");
  }
  SECTION("readings from the library, unsupported ones left empty") {
    std::string why;
    auto p = open_nvml_provider(TALKSERVE_FAKE_NVML_LIB, &why);
    INFO(why);
    REQUIRE(p);
    CHECK(p->description() == "NVML, 2 GPUs");
    auto s = p->sample();
    REQUIRE(s.size() == 2);
    CHECK(s[0].index == 0);
    CHECK(s[0].name == "Fake GPU A");
    CHECK(s[0].memory_used_bytes == 4 * kGiB);
    CHECK(s[0].memory_total_bytes == 16 * kGiB);
    CHECK(s[0].utilization == Approx(0.37));
    CHECK(s[0].temperature_c == 55);
    CHECK(s[1].name == "Fake GPU B");
    CHECK_FALSE(s[1].utilization);
    CHECK(s[1].temperature_c == 41);

    // And into the gauges through the monitor.
    MetricsRegistry r;
    ResourceMonitor m({}, r, std::move(p));
    m.sample();
    CHECK(gauge(r, "talkserve_gpu_memory_total_bytes", {{"gpu", "1"}}) == 8.0 * kGiB);
    CHECK_THAT(r.render_prometheus(), Contains("name=\"Fake GPU A\""));
  }
}

TEST_CASE("gpu monitor: config errors name the key", "[obs][gpu][config]") {
  auto error_of = [](auto change) {
    GpuMonitorConfig c;
    change(c);
    try {
      c.validate();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("valid");
  };
  CHECK(error_of([](auto&) {}) == "valid");
  CHECK_THAT(error_of([](auto& c) { c.mode = "gpu"; }), Contains("gpu.mode"));
  CHECK_THAT(error_of([](auto& c) { c.sample_interval = std::chrono::milliseconds(10); }),
             Contains("gpu.sample_interval_ms"));
  CHECK_THAT(error_of([](auto& c) { c.max_memory_fraction = 1.5; }),
             Contains("gpu.max_memory_fraction"));
  CHECK_THAT(error_of([](auto& c) { c.max_memory_fraction = -0.1; }),
             Contains("gpu.max_memory_fraction"));
  CHECK_THAT(error_of([](auto& c) { c.max_temperature_c = 200; }),
             Contains("gpu.max_temperature_c"));
  CHECK_THAT(error_of([](auto& c) { c.max_rss_mb = -1; }), Contains("gpu.max_rss_mb"));
  CHECK_THAT(error_of([](auto& c) { c.memory_hysteresis = 1; }), Contains("gpu.memory_hysteresis"));
  CHECK_THAT(error_of([](auto& c) {
               c.max_memory_fraction = 0.05;
               c.memory_hysteresis = 0.1;
             }),
             Contains("gpu.memory_hysteresis"));
  CHECK_THAT(error_of([](auto& c) { c.temperature_hysteresis_c = -1; }),
             Contains("gpu.temperature_hysteresis_c"));
}
