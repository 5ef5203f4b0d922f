#include "talkserve/obs/metrics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace talkserve::obs {

namespace {

enum FamilyType : int { kCounter = 0, kGauge = 1, kHistogram = 2 };

const char* type_name(int type) {
  switch (type) {
    case kCounter:
      return "counter";
    case kGauge:
      return "gauge";
    default:
      return "histogram";
  }
}

bool is_name_char(char c, bool first, bool allow_colon) {
  const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  const bool digit = c >= '0' && c <= '9';
  return alpha || (allow_colon && c == ':') || (!first && digit);
}

void check_metric_name(std::string_view name) {
  bool ok = !name.empty();
  for (std::size_t i = 0; ok && i < name.size(); ++i) ok = is_name_char(name[i], i == 0, true);
  if (!ok) throw std::invalid_argument(fmt::format("invalid metric name '{}'", name));
}

// Sorts by label name so that {a,b} and {b,a} are the same series, and rejects names the text
// format cannot carry or that Prometheus reserves.
Labels normalise_labels(Labels labels, std::string_view metric, bool histogram) {
  for (const auto& [k, v] : labels) {
    bool ok = !k.empty() && k.rfind("__", 0) != 0;
    for (std::size_t i = 0; ok && i < k.size(); ++i) ok = is_name_char(k[i], i == 0, false);
    if (!ok)
      throw std::invalid_argument(fmt::format("metric '{}': invalid label name '{}'", metric, k));
    if (histogram && k == "le")
      throw std::invalid_argument(
          fmt::format("metric '{}': label 'le' is reserved for histograms", metric));
  }
  std::sort(labels.begin(), labels.end());
  for (std::size_t i = 1; i < labels.size(); ++i)
    if (labels[i].first == labels[i - 1].first)
      throw std::invalid_argument(
          fmt::format("metric '{}': duplicate label name '{}'", metric, labels[i].first));
  return labels;
}

void check_bounds(const std::vector<double>& b, std::string_view metric) {
  for (std::size_t i = 0; i < b.size(); ++i) {
    if (!std::isfinite(b[i]) || (i > 0 && !(b[i] > b[i - 1])))
      throw std::invalid_argument(fmt::format(
          "histogram '{}': bucket bounds must be finite and strictly increasing", metric));
  }
}

// Appends `{k="v",...}` (or nothing when there are no labels); `extra` adds one more pair.
void append_labels(std::string& out, const Labels& labels, std::string_view extra_key = {},
                   std::string_view extra_value = {}) {
  if (labels.empty() && extra_key.empty()) return;
  out += '{';
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out += ',';
    first = false;
    out += k;
    out += "=\"";
    out += escape_label_value(v);
    out += '"';
  }
  if (!extra_key.empty()) {
    if (!first) out += ',';
    out += extra_key;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
}

void append_sample(std::string& out, std::string_view name, std::string_view suffix,
                   const Labels& labels, double value, std::string_view extra_key = {},
                   std::string_view extra_value = {}) {
  out += name;
  out += suffix;
  append_labels(out, labels, extra_key, extra_value);
  out += ' ';
  out += format_metric_value(value);
  out += '\n';
}

}  // namespace

// ---------------------------------------------------------------------------------------------

void Counter::inc(double v) {
  if (!(v >= 0.0)) throw std::invalid_argument("Counter::inc: negative or NaN increment");
  value_.fetch_add(v, std::memory_order_relaxed);
}

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)),
      buckets_(new std::atomic<std::uint64_t>[bounds_.size() + 1]) {
  for (std::size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::observe(double v) {
  // `le` semantics: a value equal to a bound belongs to that bound's bucket. NaN lands in +Inf.
  const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), v);
  buckets_[static_cast<std::size_t>(it - bounds_.begin())].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

std::uint64_t Histogram::bucket_count(std::size_t i) const {
  return i <= bounds_.size() ? buckets_[i].load(std::memory_order_relaxed) : 0;
}

std::uint64_t Histogram::count() const {
  std::uint64_t n = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i)
    n += buckets_[i].load(std::memory_order_relaxed);
  return n;
}

const std::vector<double>& default_latency_buckets() {
  static const std::vector<double> buckets{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                           0.25,  0.5,    1.0,   2.5,  5.0,   10.0, 30.0};
  return buckets;
}

std::vector<double> exponential_buckets(double start, double factor, std::size_t count) {
  if (!(start > 0.0) || !(factor > 1.0) || count == 0)
    throw std::invalid_argument("exponential_buckets: need start > 0, factor > 1, count >= 1");
  std::vector<double> b;
  b.reserve(count);
  for (double v = start; b.size() < count; v *= factor) b.push_back(v);
  return b;
}

// ---------------------------------------------------------------------------------------------

struct MetricsRegistry::Family {
  struct GaugeSeries {
    std::unique_ptr<Gauge> gauge;  // set for plain gauges
    std::function<double()> read;  // set for callback gauges
  };
  std::string name;
  std::string help;
  int type = kCounter;
  std::vector<double> bounds;  // histograms only
  std::map<Labels, std::unique_ptr<Counter>> counters;
  std::map<Labels, GaugeSeries> gauges;
  std::map<Labels, std::unique_ptr<Histogram>> histograms;
};

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

MetricsRegistry::Family& MetricsRegistry::family_locked(std::string_view name,
                                                        std::string_view help, int type) {
  auto it = families_.find(name);
  if (it == families_.end()) {
    check_metric_name(name);
    auto f = std::make_unique<Family>();
    f->name = std::string(name);
    f->help = std::string(help);
    f->type = type;
    it = families_.emplace(f->name, std::move(f)).first;
  } else if (it->second->type != type) {
    throw std::invalid_argument(fmt::format("metric '{}' is already registered as a {}, not a {}",
                                            name, type_name(it->second->type), type_name(type)));
  }
  return *it->second;
}

Counter& MetricsRegistry::counter(std::string_view name, std::string_view help, Labels labels) {
  labels = normalise_labels(std::move(labels), name, false);
  std::lock_guard lock(mutex_);
  auto& f = family_locked(name, help, kCounter);
  auto& slot = f.counters[std::move(labels)];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& MetricsRegistry::gauge(std::string_view name, std::string_view help, Labels labels) {
  labels = normalise_labels(std::move(labels), name, false);
  std::lock_guard lock(mutex_);
  auto& f = family_locked(name, help, kGauge);
  auto& slot = f.gauges[std::move(labels)];
  if (slot.read)
    throw std::invalid_argument(fmt::format("gauge '{}' series is a callback gauge", name));
  if (!slot.gauge) slot.gauge = std::make_unique<Gauge>();
  return *slot.gauge;
}

void MetricsRegistry::callback_gauge(std::string_view name, std::string_view help, Labels labels,
                                     std::function<double()> read) {
  if (!read) throw std::invalid_argument(fmt::format("gauge '{}': empty callback", name));
  labels = normalise_labels(std::move(labels), name, false);
  std::lock_guard lock(mutex_);
  auto& f = family_locked(name, help, kGauge);
  auto& slot = f.gauges[std::move(labels)];
  if (slot.gauge)
    throw std::invalid_argument(fmt::format("gauge '{}' series is a plain gauge", name));
  slot.read = std::move(read);
}

void MetricsRegistry::remove_callback_gauge(std::string_view name, const Labels& labels) {
  const Labels key = normalise_labels(labels, name, false);
  std::lock_guard lock(mutex_);
  auto it = families_.find(name);
  if (it == families_.end() || it->second->type != kGauge) return;
  auto& gauges = it->second->gauges;
  auto s = gauges.find(key);
  if (s != gauges.end() && s->second.read) gauges.erase(s);
}

Histogram& MetricsRegistry::histogram(std::string_view name, std::string_view help,
                                      std::vector<double> upper_bounds, Labels labels) {
  labels = normalise_labels(std::move(labels), name, true);
  check_bounds(upper_bounds, name);
  std::lock_guard lock(mutex_);
  const bool fresh = families_.find(name) == families_.end();
  auto& f = family_locked(name, help, kHistogram);
  if (fresh) {
    f.bounds = upper_bounds;
  } else if (f.bounds != upper_bounds) {
    throw std::invalid_argument(
        fmt::format("histogram '{}' is already registered with other buckets", name));
  }
  auto& slot = f.histograms[std::move(labels)];
  if (!slot) slot = std::make_unique<Histogram>(std::move(upper_bounds));
  return *slot;
}

std::string MetricsRegistry::render_prometheus() const {
  std::string out;
  out.reserve(4096);
  std::lock_guard lock(mutex_);
  for (const auto& [name, f] : families_) {
    const bool empty = f->counters.empty() && f->gauges.empty() && f->histograms.empty();
    if (empty) continue;  // e.g. the last callback series was removed
    out += "# HELP ";
    out += name;
    out += ' ';
    out += escape_help(f->help);
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type_name(f->type);
    out += '\n';
    for (const auto& [labels, c] : f->counters) append_sample(out, name, "", labels, c->value());
    for (const auto& [labels, g] : f->gauges)
      append_sample(out, name, "", labels, g.gauge ? g.gauge->value() : g.read());
    for (const auto& [labels, h] : f->histograms) {
      // Snapshot the buckets once so that the cumulative counts and _count agree.
      const auto& bounds = h->upper_bounds();
      std::uint64_t cumulative = 0;
      for (std::size_t i = 0; i < bounds.size(); ++i) {
        cumulative += h->bucket_count(i);
        append_sample(out, name, "_bucket", labels, static_cast<double>(cumulative), "le",
                      format_metric_value(bounds[i]));
      }
      cumulative += h->bucket_count(bounds.size());
      append_sample(out, name, "_bucket", labels, static_cast<double>(cumulative), "le", "+Inf");
      append_sample(out, name, "_sum", labels, h->sum());
      append_sample(out, name, "_count", labels, static_cast<double>(cumulative));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string escape_help(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string format_metric_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // fmt's default is the shortest representation that round-trips ("3", "0.005", "1e+20"),
  // all of which Prometheus' float parser accepts.
  return fmt::format("{}", v);
}

}  // namespace talkserve::obs
