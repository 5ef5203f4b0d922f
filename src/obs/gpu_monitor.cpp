#include "talkserve/obs/gpu_monitor.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <fstream>
#include <stdexcept>

#include "talkserve/obs/metrics.hpp"

namespace talkserve::obs {

void GpuMonitorConfig::validate() const {
  auto bad = [](const std::string& k, const std::string& why) {
    throw std::invalid_argument("gpu." + k + " " + why);
  };
  if (mode != "auto" && mode != "nvml" && mode != "off") {
    bad("mode", "must be \"auto\", \"nvml\" or \"off\" (got \"" + mode + "\")");
  }
  if (sample_interval.count() < 100 || sample_interval.count() > 3'600'000) {
    bad("sample_interval_ms", "must be between 100 and 3600000");
  }
  if (!(max_memory_fraction >= 0 && max_memory_fraction <= 1)) {
    bad("max_memory_fraction", "must be between 0 (off) and 1");
  }
  if (max_temperature_c < 0 || max_temperature_c > 150) {
    bad("max_temperature_c", "must be between 0 (off) and 150");
  }
  if (max_rss_mb < 0) bad("max_rss_mb", "must be >= 0 (0 = off)");
  if (!(memory_hysteresis >= 0 && memory_hysteresis < 1)) {
    bad("memory_hysteresis", "must be in [0, 1)");
  }
  if (max_memory_fraction > 0 && memory_hysteresis >= max_memory_fraction) {
    bad("memory_hysteresis", "must be below gpu.max_memory_fraction (else it never recovers)");
  }
  if (temperature_hysteresis_c < 0 || temperature_hysteresis_c > 50) {
    bad("temperature_hysteresis_c", "must be between 0 and 50");
  }
}

std::optional<std::uint64_t> process_resident_bytes() {
  // statm: size resident shared text lib data dt, in pages. One read, no parsing of the
  // human-oriented /proc/self/status.
  std::ifstream in("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  if (!(in >> size >> resident)) return std::nullopt;
  const long page = sysconf(_SC_PAGESIZE);
  if (page <= 0) return std::nullopt;
  return resident * static_cast<std::uint64_t>(page);
}

std::unique_ptr<ResourceMonitor> make_resource_monitor(const GpuMonitorConfig& config,
                                                       MetricsRegistry& registry) {
  if (config.mode == "off") return nullptr;
  std::string why;
  auto nvml = open_nvml_provider("libnvidia-ml.so.1", &why);
  if (nvml) {
    spdlog::info("gpu: monitoring through {}", nvml->description());
  } else if (config.mode == "nvml") {
    throw std::runtime_error("gpu.mode is \"nvml\" but NVML is unavailable: " + why);
  } else {
    spdlog::info("gpu: NVML not available ({}); reporting process memory only", why);
  }
  return std::make_unique<ResourceMonitor>(config, registry, std::move(nvml));
}

struct ResourceMonitor::GpuGauges {
  Gauge* memory_used;
  Gauge* memory_total;
  Gauge* utilization;
  Gauge* temperature;
};

namespace {

std::string percent(double fraction) {
  return fmt::format("{:.1f}%", fraction * 100);
}
std::string mib(std::uint64_t bytes) {
  return fmt::format("{} MiB", bytes >> 20);
}

}  // namespace

ResourceMonitor::ResourceMonitor(GpuMonitorConfig config, MetricsRegistry& registry,
                                 std::unique_ptr<GpuProvider> provider, RssReader rss)
    : config_(std::move(config)),
      registry_(registry),
      provider_(std::move(provider)),
      rss_(std::move(rss)),
      rss_gauge_(registry.gauge("talkserve_process_resident_memory_bytes",
                                "Resident memory of the talkserve process (RSS).")) {
  auto limit_metrics = [&](const char* resource) {
    return LimitMetrics{
        &registry.gauge("talkserve_resource_limit_exceeded",
                        "Resource limits currently exceeded (the server reports not ready).",
                        {{"resource", resource}}),
        &registry.counter("talkserve_resource_alerts_total",
                          "Times a resource went above its configured limit.",
                          {{"resource", resource}})};
  };
  gpu_memory_metrics_ = limit_metrics("gpu_memory");
  gpu_temperature_metrics_ = limit_metrics("gpu_temperature");
  rss_metrics_ = limit_metrics("process_memory");
}

ResourceMonitor::~ResourceMonitor() {
  stop();
}

ResourceMonitor::GpuGauges& ResourceMonitor::gauges_for(const GpuSample& s) {
  while (gpu_gauges_.size() <= s.index) {
    const Labels gpu{{"gpu", std::to_string(gpu_gauges_.size())}};
    gpu_gauges_.push_back(std::make_unique<GpuGauges>(GpuGauges{
        &registry_.gauge("talkserve_gpu_memory_used_bytes", "GPU memory in use (all processes).",
                         gpu),
        &registry_.gauge("talkserve_gpu_memory_total_bytes", "GPU memory installed.", gpu),
        &registry_.gauge("talkserve_gpu_utilization_ratio",
                         "Fraction of the last sample period the GPU was busy (0..1).", gpu),
        &registry_.gauge("talkserve_gpu_temperature_celsius", "GPU core temperature.", gpu)}));
    memory_limits_.emplace_back();
    temperature_limits_.emplace_back();
  }
  auto& g = *gpu_gauges_[s.index];
  if (!s.name.empty()) {
    registry_
        .gauge("talkserve_gpu_info", "GPU model names (value always 1).",
               {{"gpu", std::to_string(s.index)}, {"name", s.name}})
        .set(1);
  }
  return g;
}

void ResourceMonitor::evaluate(Limit& limit, const LimitMetrics& m, bool over, bool recovered,
                               const std::string& detail) {
  if (!limit.breached && over) {
    limit.breached = true;
    limit.reason = detail;
    m.alerts->inc();
    spdlog::warn("resource limit exceeded: {}; reporting not ready", detail);
  } else if (limit.breached && recovered) {
    limit.breached = false;
    limit.reason.clear();
    spdlog::info("resource back within its limit: {}; ready again", detail);
  } else if (limit.breached) {
    limit.reason = detail;  // still above (or within the hysteresis band): current figure
  }
}

void ResourceMonitor::sample_gpus() {
  if (!provider_) return;
  std::vector<GpuSample> samples;
  try {
    samples = provider_->sample();
    if (provider_failed_) spdlog::info("gpu: {} answers again", provider_->description());
    provider_failed_ = false;
  } catch (const std::exception& e) {
    if (!provider_failed_)
      spdlog::warn("gpu: sampling failed: {} (keeping the last values)", e.what());
    provider_failed_ = true;
    return;
  }
  const double max_mem = config_.max_memory_fraction;
  const int max_temp = config_.max_temperature_c;
  for (const auto& s : samples) {
    auto& g = gauges_for(s);
    if (s.memory_used_bytes) g.memory_used->set(static_cast<double>(*s.memory_used_bytes));
    if (s.memory_total_bytes) g.memory_total->set(static_cast<double>(*s.memory_total_bytes));
    if (s.utilization) g.utilization->set(*s.utilization);
    if (s.temperature_c) g.temperature->set(*s.temperature_c);

    if (max_mem > 0 && s.memory_used_bytes && s.memory_total_bytes && *s.memory_total_bytes > 0) {
      const double frac =
          static_cast<double>(*s.memory_used_bytes) / static_cast<double>(*s.memory_total_bytes);
      evaluate(memory_limits_[s.index], gpu_memory_metrics_, frac > max_mem,
               frac <= max_mem - config_.memory_hysteresis,
               fmt::format("gpu {} memory {} of {} (gpu.max_memory_fraction {})", s.index,
                           percent(frac), mib(*s.memory_total_bytes), max_mem));
    }
    if (max_temp > 0 && s.temperature_c) {
      const double t = *s.temperature_c;
      evaluate(
          temperature_limits_[s.index], gpu_temperature_metrics_, t > max_temp,
          t <= max_temp - config_.temperature_hysteresis_c,
          fmt::format("gpu {} temperature {} C (gpu.max_temperature_c {})", s.index, t, max_temp));
    }
  }
}

void ResourceMonitor::sample_process() {
  const auto rss = rss_();
  if (!rss) return;
  rss_gauge_.set(static_cast<double>(*rss));
  if (config_.max_rss_mb <= 0) return;
  const double limit = static_cast<double>(config_.max_rss_mb) * (1 << 20);
  const double value = static_cast<double>(*rss);
  evaluate(
      rss_limit_, rss_metrics_, value > limit, value <= limit * (1 - config_.memory_hysteresis),
      fmt::format("process resident memory {} (gpu.max_rss_mb {})", mib(*rss), config_.max_rss_mb));
}

void ResourceMonitor::publish_reasons() {
  std::vector<std::string> reasons;
  auto collect = [&](const std::vector<Limit>& limits, const LimitMetrics& m) {
    int n = 0;
    for (const auto& l : limits) {
      if (!l.breached) continue;
      reasons.push_back(l.reason);
      ++n;
    }
    m.exceeded->set(n);
  };
  collect(memory_limits_, gpu_memory_metrics_);
  collect(temperature_limits_, gpu_temperature_metrics_);
  collect({rss_limit_}, rss_metrics_);
  std::lock_guard lock(state_mutex_);
  reasons_ = std::move(reasons);
}

void ResourceMonitor::sample() {
  std::lock_guard lock(sample_mutex_);
  sample_gpus();
  sample_process();
  publish_reasons();
}

std::optional<std::string> ResourceMonitor::not_ready_reason() const {
  std::lock_guard lock(state_mutex_);
  if (reasons_.empty()) return std::nullopt;
  std::string out;
  for (const auto& r : reasons_) {
    if (!out.empty()) out += "; ";
    out += r;
  }
  return out;
}

void ResourceMonitor::start() {
  sample();
  std::lock_guard lock(thread_mutex_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] {
    std::unique_lock lock(thread_mutex_);
    while (!wake_.wait_for(lock, config_.sample_interval, [this] { return stopping_; })) {
      lock.unlock();
      sample();
      lock.lock();
    }
  });
}

void ResourceMonitor::stop() {
  {
    std::lock_guard lock(thread_mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace talkserve::obs
