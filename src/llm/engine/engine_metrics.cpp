#include "talkserve/llm/engine_metrics.hpp"

namespace talkserve::llm {

namespace {

obs::Labels with_model(const std::string& model, obs::Labels extra = {}) {
  extra.emplace_back("model_name", model);
  return extra;
}

// Inter-token latencies are much shorter than whole requests: finer low buckets (0.5 ms..).
std::vector<double> itl_buckets() { return obs::exponential_buckets(0.0005, 2.0, 16); }

void add_delta(obs::Counter& c, std::uint64_t now, std::uint64_t before) {
  if (now > before) c.inc(static_cast<double>(now - before));
}

}  // namespace

EngineMetrics::EngineMetrics(obs::MetricsRegistry& r, const std::string& model,
                             std::int64_t kv_cache_bytes)
    : running_(r.gauge("talkserve_num_requests_running",
                       "Requests in the running batch of the LLM engine.", with_model(model))),
      waiting_(r.gauge("talkserve_num_requests_waiting",
                       "Requests waiting for admission to the LLM engine.", with_model(model))),
      kv_usage_(r.gauge("talkserve_kv_cache_usage_perc",
                        "Fraction of KV cache blocks in use (0..1).", with_model(model))),
      kv_used_bytes_(r.gauge("talkserve_kv_cache_used_bytes",
                             "Bytes of the KV cache held by sequences.", with_model(model))),
      kv_cache_bytes_(static_cast<double>(kv_cache_bytes)),
      prompt_tokens_(r.counter("talkserve_prompt_tokens_total", "Prompt tokens prefilled.",
                               with_model(model))),
      generation_tokens_(r.counter("talkserve_generation_tokens_total", "Tokens generated.",
                                   with_model(model))),
      preemptions_(r.counter("talkserve_num_preemptions_total",
                             "Sequences preempted for lack of KV blocks.", with_model(model))),
      prefix_queries_(r.counter("talkserve_prefix_cache_queries_total",
                                "Prefix cache queries, in tokens.", with_model(model))),
      prefix_hits_(r.counter("talkserve_prefix_cache_hits_total",
                             "Prefix cache hits, in tokens.", with_model(model))),
      finished_{},
      ttft_(r.histogram("talkserve_time_to_first_token_seconds", "Time to first token.",
                        obs::default_latency_buckets(), with_model(model))),
      itl_(r.histogram("talkserve_inter_token_latency_seconds", "Time between output tokens.",
                       itl_buckets(), with_model(model))),
      e2e_(r.histogram("talkserve_e2e_request_latency_seconds", "Request latency, end to end.",
                       obs::default_latency_buckets(), with_model(model))),
      queue_(r.histogram("talkserve_request_queue_time_seconds",
                         "Time from submission to first scheduling.",
                         obs::default_latency_buckets(), with_model(model))) {
  for (FinishReason reason : {FinishReason::stop, FinishReason::length, FinishReason::cancelled,
                              FinishReason::error})
    finished_[static_cast<int>(reason)] =
        &r.counter("talkserve_request_success_total", "Finished requests by finish reason.",
                   with_model(model, {{"finished_reason", to_string(reason)}}));
  r.gauge("talkserve_kv_cache_bytes", "Bytes of the whole KV cache, allocated at start.",
          with_model(model))
      .set(kv_cache_bytes_);
}

void EngineMetrics::on_step(const EngineStats& s) {
  running_.set(s.num_running);
  waiting_.set(s.num_waiting);
  kv_usage_.set(s.kv_cache_usage);
  kv_used_bytes_.set(s.kv_cache_usage * kv_cache_bytes_);
  add_delta(prompt_tokens_, s.prompt_tokens_total, last_.prompt_tokens_total);
  add_delta(generation_tokens_, s.generation_tokens_total, last_.generation_tokens_total);
  add_delta(preemptions_, s.num_preemptions_total, last_.num_preemptions_total);
  add_delta(prefix_queries_, s.prefix_cache_queries_total, last_.prefix_cache_queries_total);
  add_delta(prefix_hits_, s.prefix_cache_hits_total, last_.prefix_cache_hits_total);
  last_ = s;
}

void EngineMetrics::on_request_finished(const FinishedEvent& e) {
  finished_[static_cast<int>(e.reason)]->inc();
  queue_.observe(e.timing.queue_time);
  e2e_.observe(e.timing.e2e_latency);
  if (e.timing.time_to_first_token) ttft_.observe(*e.timing.time_to_first_token);
  for (double itl : e.timing.inter_token_latencies) itl_.observe(itl);
}

}  // namespace talkserve::llm
