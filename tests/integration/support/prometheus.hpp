#pragma once
// A strict parser of the Prometheus text exposition format (version 0.0.4), enough to check
// that /metrics is well-formed and to read one series' value in a test.

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace talkserve::itest {

using MetricLabels = std::map<std::string, std::string>;

struct MetricSample {
  std::string name;  // including _bucket/_sum/_count suffixes
  MetricLabels labels;
  double value = 0;
};

struct MetricFamilyInfo {
  std::string help;
  std::string type;  // counter, gauge, histogram, summary, untyped
};

struct MetricsText {
  std::vector<MetricSample> samples;
  std::map<std::string, MetricFamilyInfo> families;  // from # HELP / # TYPE lines

  // The value of the first sample named `name` whose labels include every pair of `labels`.
  std::optional<double> value(std::string_view name, const MetricLabels& labels = {}) const;
  // The sum over all such samples (0 when none).
  double sum(std::string_view name, const MetricLabels& labels = {}) const;
  // Every sample named `name` whose labels include `labels`.
  std::vector<MetricSample> find(std::string_view name, const MetricLabels& labels = {}) const;
};

// Throws std::runtime_error naming the line for anything malformed (bad name, unterminated
// label value, bad escape, unparsable value, a sample of a family whose TYPE came later...).
MetricsText parse_prometheus(std::string_view text);

}  // namespace talkserve::itest
