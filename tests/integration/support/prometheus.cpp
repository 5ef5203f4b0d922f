#include "support/prometheus.hpp"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <stdexcept>

namespace talkserve::itest {

namespace {

bool name_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':'; }
bool name_char(char c) { return name_start(c) || std::isdigit(static_cast<unsigned char>(c)); }

struct LineParser {
  std::string_view s;
  std::size_t i = 0;
  std::size_t line_no;

  [[noreturn]] void fail(const std::string& why) const {
    throw std::runtime_error("metrics line " + std::to_string(line_no) + ": " + why + ": " +
                             std::string(s));
  }
  std::string name() {
    std::size_t start = i;
    if (i >= s.size() || !name_start(s[i])) fail("expected a metric or label name");
    while (i < s.size() && name_char(s[i])) ++i;
    return std::string(s.substr(start, i - start));
  }
  void expect(char c) {
    if (i >= s.size() || s[i] != c) fail(std::string("expected '") + c + "'");
    ++i;
  }
  std::string quoted() {
    expect('"');
    std::string out;
    while (true) {
      if (i >= s.size()) fail("unterminated label value");
      char c = s[i++];
      if (c == '"') break;
      if (c == '\\') {
        if (i >= s.size()) fail("bad escape");
        char e = s[i++];
        if (e == 'n') out += '\n';
        else if (e == '\\') out += '\\';
        else if (e == '"') out += '"';
        else fail("bad escape");
      } else {
        out += c;
      }
    }
    return out;
  }
  double value() {
    while (i < s.size() && s[i] == ' ') ++i;
    std::size_t start = i;
    while (i < s.size() && s[i] != ' ') ++i;
    std::string v(s.substr(start, i - start));
    if (v == "+Inf") return INFINITY;
    if (v == "-Inf") return -INFINITY;
    if (v == "NaN") return NAN;
    char* end = nullptr;
    double d = std::strtod(v.c_str(), &end);
    if (v.empty() || end != v.c_str() + v.size()) fail("bad value '" + v + "'");
    return d;
  }
};

bool labels_match(const MetricLabels& have, const MetricLabels& want) {
  for (const auto& [k, v] : want) {
    auto it = have.find(k);
    if (it == have.end() || it->second != v) return false;
  }
  return true;
}

}  // namespace

MetricsText parse_prometheus(std::string_view text) {
  MetricsText out;
  std::size_t line_no = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (line.empty()) continue;
    LineParser p{line, 0, line_no};
    if (line.front() == '#') {
      if (line.starts_with("# HELP ") || line.starts_with("# TYPE ")) {
        bool help = line[2] == 'H';
        p.i = 7;
        std::string name = p.name();
        std::string rest;
        if (p.i < line.size()) {
          p.expect(' ');
          rest = std::string(line.substr(p.i));
        }
        auto& fam = out.families[name];
        if (help) {
          fam.help = rest;
        } else {
          static const char* kTypes[] = {"counter", "gauge", "histogram", "summary", "untyped"};
          bool ok = false;
          for (auto t : kTypes) ok = ok || rest == t;
          if (!ok) p.fail("unknown metric type '" + rest + "'");
          fam.type = rest;
        }
      }
      continue;
    }
    MetricSample sample;
    sample.name = p.name();
    if (p.i < line.size() && line[p.i] == '{') {
      ++p.i;
      while (p.i < line.size() && line[p.i] != '}') {
        std::string k = p.name();
        p.expect('=');
        std::string v = p.quoted();
        if (!sample.labels.emplace(k, v).second) p.fail("label " + k + " twice");
        if (p.i < line.size() && line[p.i] == ',') ++p.i;
      }
      p.expect('}');
    }
    if (p.i >= line.size() || line[p.i] != ' ') p.fail("expected a space before the value");
    sample.value = p.value();
    out.samples.push_back(std::move(sample));
  }
  return out;
}

std::vector<MetricSample> MetricsText::find(std::string_view name, const MetricLabels& labels) const {
  std::vector<MetricSample> out;
  for (const auto& s : samples)
    if (s.name == name && labels_match(s.labels, labels)) out.push_back(s);
  return out;
}

std::optional<double> MetricsText::value(std::string_view name, const MetricLabels& labels) const {
  for (const auto& s : samples)
    if (s.name == name && labels_match(s.labels, labels)) return s.value;
  return std::nullopt;
}

double MetricsText::sum(std::string_view name, const MetricLabels& labels) const {
  double total = 0;
  for (const auto& s : samples)
    if (s.name == name && labels_match(s.labels, labels)) total += s.value;
  return total;
}

}  // namespace talkserve::itest
