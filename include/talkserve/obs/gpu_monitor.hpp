#pragma once
// GPU and process memory monitor: samples the GPUs (through NVML when the driver's library is
// present) and this process's resident memory, exports them as Prometheus gauges, and turns
// configured thresholds into a readiness verdict, so a box whose GPU is full or too hot stops
// receiving new traffic from the load balancer instead of failing requests.
//
//   ResourceMonitor monitor(config.gpu, registry, open_nvml_provider("libnvidia-ml.so.1", &why));
//   monitor.start();                    // samples every sample_interval_ms on its own thread
//   if (auto reason = monitor.not_ready_reason()) ...   // "/readyz" says 503 with *reason
//
// NVML is opened with dlopen at run time, so the binary has no link-time dependency on the
// driver and runs unchanged on machines without a GPU; there only process memory is reported.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace talkserve::obs {

class MetricsRegistry;
class Gauge;
class Counter;

// [gpu] in the configuration file.
struct GpuMonitorConfig {
  // "auto": NVML when libnvidia-ml.so.1 loads, else process memory only (logged once);
  // "nvml": NVML is required (start fails without it); "off": no monitor, no thresholds.
  std::string mode = "auto";
  std::chrono::milliseconds sample_interval{5000};
  double max_memory_fraction = 0;  // GPU memory used/total above this: not ready (0 = off)
  int max_temperature_c = 0;       // GPU temperature above this: not ready (0 = off)
  int max_rss_mb = 0;              // process resident memory above this: not ready (0 = off)
  // Recovery needs the value to fall this far below the limit, so a reading that hovers at
  // the limit does not flap readiness (and the log) on every sample.
  double memory_hysteresis = 0.05;  // fraction of GPU memory, or of max_rss_mb
  int temperature_hysteresis_c = 5;
  // Throws std::invalid_argument naming the key ("gpu.max_memory_fraction must be ...").
  void validate() const;
};

// One GPU at one moment. A reading the device does not support stays empty.
struct GpuSample {
  unsigned index = 0;
  std::string name;
  std::optional<std::uint64_t> memory_used_bytes;
  std::optional<std::uint64_t> memory_total_bytes;
  std::optional<double> utilization;  // 0..1, busy fraction of the last sample period
  std::optional<double> temperature_c;
};

// Where GPU readings come from. Thread-safety: sample() is called from one thread at a time.
class GpuProvider {
 public:
  virtual ~GpuProvider() = default;
  virtual std::string description() const = 0;  // for the log: "NVML, 2 GPUs: ..."
  // Throws std::runtime_error when the whole query fails (the monitor logs it and keeps the
  // previous gauges).
  virtual std::vector<GpuSample> sample() = 0;
};

// Loads NVML from `library` with dlopen and initialises it. Returns nullptr, and says why in
// *why_absent, when the library is missing, lacks a symbol or nvmlInit_v2 fails.
std::unique_ptr<GpuProvider> open_nvml_provider(const std::string& library,
                                                std::string* why_absent);

// The monitor `config.mode` asks for, providers opened: nullptr for "off"; for "auto" NVML
// when libnvidia-ml.so.1 loads, else process memory only (logged once, at info); for "nvml"
// std::runtime_error saying why NVML is unavailable. Does not start sampling.
std::unique_ptr<class ResourceMonitor> make_resource_monitor(const GpuMonitorConfig& config,
                                                             MetricsRegistry& registry);

// This process's resident set size in bytes, from /proc/self/statm; nullopt if unreadable.
std::optional<std::uint64_t> process_resident_bytes();

// Thread-safety: sample() and not_ready_reason() may be called from any thread (samples are
// serialised internally); start() and stop() from one owning thread.
class ResourceMonitor {
 public:
  using RssReader = std::function<std::optional<std::uint64_t>()>;

  // `provider` may be null (no NVML): only process memory is reported. `rss` is injectable
  // for tests. Registers the gauges; does not sample yet.
  ResourceMonitor(GpuMonitorConfig config, MetricsRegistry& registry,
                  std::unique_ptr<GpuProvider> provider, RssReader rss = process_resident_bytes);
  ~ResourceMonitor();
  ResourceMonitor(const ResourceMonitor&) = delete;
  ResourceMonitor& operator=(const ResourceMonitor&) = delete;

  // Takes one sample now: updates the gauges and the readiness verdict.
  void sample();
  // Samples once, then every sample_interval on a thread of its own until stop().
  void start();
  void stop();  // idempotent; wakes the thread at once

  bool has_gpu() const { return provider_ != nullptr; }
  // Why the server should not take traffic ("gpu 0 memory 97.1% > gpu.max_memory_fraction
  // 95%"), or nullopt when every reading is within its limit.
  std::optional<std::string> not_ready_reason() const;

 private:
  struct GpuGauges;
  // One threshold with hysteresis; `breached` flips on entering and on recovery.
  struct Limit {
    std::string reason;
    bool breached = false;
  };
  // The gauges and alert counter of one kind of limit (gpu_memory, gpu_temperature,
  // process_memory).
  struct LimitMetrics {
    Gauge* exceeded;  // limits of this kind currently exceeded
    Counter* alerts;  // times a limit of this kind was entered
  };
  GpuGauges& gauges_for(const GpuSample& s);
  void sample_gpus();
  void sample_process();
  // Applies one reading to `limit`: entering logs a warning and counts an alert, recovery
  // (below the limit by the hysteresis) logs at info, anything else only refreshes the reason.
  static void evaluate(Limit& limit, const LimitMetrics& m, bool over, bool recovered,
                       const std::string& detail);
  void publish_reasons();

  GpuMonitorConfig config_;
  MetricsRegistry& registry_;
  std::unique_ptr<GpuProvider> provider_;
  RssReader rss_;
  Gauge& rss_gauge_;
  LimitMetrics gpu_memory_metrics_;
  LimitMetrics gpu_temperature_metrics_;
  LimitMetrics rss_metrics_;

  std::mutex sample_mutex_;  // serialises sample()
  std::vector<std::unique_ptr<GpuGauges>> gpu_gauges_;
  std::vector<Limit> memory_limits_;       // per GPU index
  std::vector<Limit> temperature_limits_;  // per GPU index
  Limit rss_limit_;
  bool provider_failed_ = false;  // log a failing provider once, not every sample

  mutable std::mutex state_mutex_;  // guards reasons_
  std::vector<std::string> reasons_;

  std::mutex thread_mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace talkserve::obs
