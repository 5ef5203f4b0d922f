#pragma once
// Process-wide metrics with Prometheus text exposition (format 0.0.4).
//
// A MetricsRegistry owns families (one name, one type, one help text) of series (one label
// set each). Registration looks a series up under a mutex and returns a reference that stays
// valid for the registry's lifetime, so callers register once at start-up and keep the
// reference; updates on that reference are lock-free atomics and safe on hot paths.
//
//   auto& admitted = registry.counter("talkserve_admitted_total", "Requests admitted.",
//                                     {{"tier", "vip"}});
//   admitted.inc();
//   auto& latency = registry.histogram("talkserve_request_seconds", "Request latency.",
//                                      default_latency_buckets());
//   latency.observe(0.012);
//   std::string body = registry.render_prometheus();  // GET /metrics
//
// Label sets are identified regardless of the order the pairs are given in; they are rendered
// sorted by label name. Families render sorted by name, series sorted by label values, so the
// output is deterministic.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace talkserve::obs {

using Labels = std::vector<std::pair<std::string, std::string>>;

// A monotonically increasing value. Thread-safety: every method may be called from any thread.
class Counter {
 public:
  // Adds `v` (default 1). Throws std::invalid_argument if v is negative or NaN: a counter
  // that goes down breaks rate() in every dashboard, so it is a programming error.
  void inc(double v = 1.0);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// A value that goes up and down. Thread-safety: every method may be called from any thread.
class Gauge {
 public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void inc(double v = 1.0) { value_.fetch_add(v, std::memory_order_relaxed); }
  void dec(double v = 1.0) { value_.fetch_sub(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Observations counted into fixed buckets. Thread-safety: every method may be called from any
// thread. A scrape concurrent with observe() may see the new observation in the bucket counts
// but not yet in the sum; the rendered _count always equals the +Inf bucket.
class Histogram {
 public:
  // `upper_bounds` must be finite and strictly increasing (checked by the registry).
  explicit Histogram(std::vector<double> upper_bounds);

  void observe(double v);

  const std::vector<double>& upper_bounds() const { return bounds_; }
  // Non-cumulative count of bucket i; i == upper_bounds().size() is the +Inf overflow bucket.
  std::uint64_t bucket_count(std::size_t i) const;
  std::uint64_t count() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  // bounds_.size() + 1 entries
  std::atomic<double> sum_{0.0};
};

// Latency buckets in seconds, 1 ms .. 30 s, suited to both token-level and whole-turn timings.
const std::vector<double>& default_latency_buckets();
// `count` bounds: start, start*factor, ... (start > 0, factor > 1, count >= 1).
std::vector<double> exponential_buckets(double start, double factor, std::size_t count);

class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Returns the series for name+labels, creating it on first use. Throws std::invalid_argument
  // for an invalid metric or label name, a duplicate label name, a name already registered
  // with another type, or (histograms) different buckets than the family was created with.
  // The help text of the first registration wins. Thread-safe (takes the registry mutex).
  Counter& counter(std::string_view name, std::string_view help, Labels labels = {});
  Gauge& gauge(std::string_view name, std::string_view help, Labels labels = {});
  Histogram& histogram(std::string_view name, std::string_view help,
                       std::vector<double> upper_bounds, Labels labels = {});

  // A gauge whose value is computed at scrape time (queue depths, free KV blocks, ...).
  // `read` runs on the scraping thread under the registry mutex, so it must be quick, must not
  // call back into this registry, and must stay callable until it is replaced or the registry
  // is destroyed. Registering the same name+labels again replaces the callback (so a restarted
  // component can re-point it); a plain gauge with the same name+labels is an error.
  // Thread-safe.
  void callback_gauge(std::string_view name, std::string_view help, Labels labels,
                      std::function<double()> read);
  // Removes a callback gauge series (no-op if absent), for components that die before the
  // registry. Thread-safe.
  void remove_callback_gauge(std::string_view name, const Labels& labels);

  // The whole registry in Prometheus text format 0.0.4
  // (Content-Type: text/plain; version=0.0.4; charset=utf-8). Thread-safe.
  std::string render_prometheus() const;

 private:
  struct Family;
  Family& family_locked(std::string_view name, std::string_view help, int type);

  mutable std::mutex mutex_;
  std::map<std::string, std::unique_ptr<Family>, std::less<>> families_;
};

// Text-format helpers, exposed for tests and for other exposition writers.
std::string escape_label_value(std::string_view v);  // backslash, double quote, newline
std::string escape_help(std::string_view v);         // backslash, newline
std::string format_metric_value(double v);           // shortest round-trip; +Inf, -Inf, NaN

}  // namespace talkserve::obs
