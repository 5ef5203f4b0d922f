#pragma once
// Publishes the engine's stats to Prometheus under vLLM-like names:
//   gauges      talkserve_num_requests_running, talkserve_num_requests_waiting,
//               talkserve_kv_cache_usage_perc (0..1, as vLLM)
//   counters    talkserve_prompt_tokens_total, talkserve_generation_tokens_total,
//               talkserve_num_preemptions_total, talkserve_prefix_cache_queries_total,
//               talkserve_prefix_cache_hits_total (tokens),
//               talkserve_request_success_total{finished_reason}
//   histograms  talkserve_time_to_first_token_seconds, talkserve_inter_token_latency_seconds,
//               talkserve_e2e_request_latency_seconds, talkserve_request_queue_time_seconds
// Every series carries the label model_name.
//
// Thread-safety: the observer hooks run on the engine thread; the metric objects are atomics,
// so a concurrent scrape is safe.

#include <string>

#include "talkserve/llm/engine_stats.hpp"
#include "talkserve/obs/metrics.hpp"

namespace talkserve::llm {

class EngineMetrics final : public EngineObserver {
 public:
  // Registers the series (throws std::invalid_argument on a name clash in `registry`).
  // `kv_cache_bytes`: memory of the whole KV cache (ModelInfo), exported with the bytes held
  // by sequences so that memory can be watched where no GPU monitor reports it.
  EngineMetrics(obs::MetricsRegistry& registry, const std::string& model_name,
                std::int64_t kv_cache_bytes = 0);

  void on_step(const EngineStats& stats) override;
  void on_request_finished(const FinishedEvent& event) override;

 private:
  obs::Gauge& running_;
  obs::Gauge& waiting_;
  obs::Gauge& kv_usage_;
  obs::Gauge& kv_used_bytes_;
  double kv_cache_bytes_;
  obs::Counter& prompt_tokens_;
  obs::Counter& generation_tokens_;
  obs::Counter& preemptions_;
  obs::Counter& prefix_queries_;
  obs::Counter& prefix_hits_;
  obs::Counter* finished_[4];
  obs::Histogram& ttft_;
  obs::Histogram& itl_;
  obs::Histogram& e2e_;
  obs::Histogram& queue_;
  EngineStats last_;  // counters are fed the increase since the previous step
};

}  // namespace talkserve::llm
