#pragma once
// What a load run reads back from the server: the gauges of /metrics that are zero (or at their
// idle value) when no request is in the server, and the server's resident memory.
//
// Gauges that must come back to rest after every client is gone:
//   talkserve_in_flight_requests      admitted HTTP requests and open WebSocket sessions
//   talkserve_queue_depth{executor}   work waiting in the ASR, TTS and LLM executors
//   talkserve_num_requests_running    sequences in the LLM engine's running batch
//   talkserve_num_requests_waiting    sequences waiting for the LLM engine
//   talkserve_kv_cache_usage_perc     referenced KV blocks / all KV blocks: back to the value it
//                                     had before the run (blocks kept only by the prefix cache
//                                     are unreferenced and do not count), so a leaked block shows

#include <sys/types.h>

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace talkserve::load {

struct Gauges {
  double in_flight = 0;
  double llm_running = 0;
  double llm_waiting = 0;
  double kv_usage = 0;
  std::map<std::string, double> queue_depth;  // by executor
};

// Parses a /metrics body. Throws std::runtime_error on malformed text or a missing gauge.
Gauges gauges_of(std::string_view metrics_text);

// What is not at rest, e.g. "in_flight=3 queue_depth{tts}=2 kv_usage=0.0125 (idle 0)"; empty
// when every gauge is at rest. `idle` gives the KV usage at rest.
std::string busy(const Gauges& now, const Gauges& idle);

nlohmann::json to_json(const Gauges& g);

// VmRSS of process `pid` in bytes (from /proc/<pid>/status); nullopt when it cannot be read.
std::optional<double> resident_bytes(pid_t pid);

}  // namespace talkserve::load
