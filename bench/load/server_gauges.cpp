#include "server_gauges.hpp"

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "support/prometheus.hpp"

namespace talkserve::load {

Gauges gauges_of(std::string_view metrics_text) {
  const auto m = itest::parse_prometheus(metrics_text);
  auto required = [&m](std::string_view name) {
    const auto v = m.value(name);
    if (!v) throw std::runtime_error("/metrics has no " + std::string(name));
    return *v;
  };
  Gauges g;
  g.in_flight = required("talkserve_in_flight_requests");
  // The LLM gauges carry a model_name label; a server without an LLM has none.
  g.llm_running = m.sum("talkserve_num_requests_running");
  g.llm_waiting = m.sum("talkserve_num_requests_waiting");
  g.kv_usage = m.sum("talkserve_kv_cache_usage_perc");
  for (const auto& s : m.find("talkserve_queue_depth")) {
    const auto it = s.labels.find("executor");
    g.queue_depth[it == s.labels.end() ? std::string() : it->second] = s.value;
  }
  return g;
}

std::string busy(const Gauges& now, const Gauges& idle) {
  std::ostringstream out;
  auto put = [&out](const std::string& what, double v) {
    if (out.tellp() > 0) out << ' ';
    out << what << '=' << v;
  };
  if (now.in_flight != 0) put("in_flight", now.in_flight);
  if (now.llm_running != 0) put("llm_running", now.llm_running);
  if (now.llm_waiting != 0) put("llm_waiting", now.llm_waiting);
  for (const auto& [executor, depth] : now.queue_depth)
    if (depth != 0) put("queue_depth{" + executor + "}", depth);
  if (now.kv_usage != idle.kv_usage) {
    std::ostringstream idle_value;
    idle_value << idle.kv_usage;
    put("kv_usage", now.kv_usage);
    out << " (idle " << idle_value.str() << ')';
  }
  return out.str();
}

nlohmann::json to_json(const Gauges& g) {
  return {{"in_flight", g.in_flight},
          {"llm_running", g.llm_running},
          {"llm_waiting", g.llm_waiting},
          {"kv_usage", g.kv_usage},
          {"queue_depth", g.queue_depth}};
}

std::optional<double> resident_bytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) != 0) continue;
    std::istringstream fields(line.substr(6));
    double kb = 0;
    if (fields >> kb) return kb * 1024.0;
  }
  return std::nullopt;
}

}  // namespace talkserve::load
