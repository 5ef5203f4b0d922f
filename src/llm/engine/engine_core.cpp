#include "talkserve/llm/engine_core.hpp"

#include <algorithm>
#include <stdexcept>
#include <unordered_set>

namespace talkserve::llm {

const char* to_string(FinishReason reason) {
  switch (reason) {
    case FinishReason::stop: return "stop";
    case FinishReason::length: return "length";
    case FinishReason::cancelled: return "cancelled";
    case FinishReason::error: return "error";
  }
  return "error";
}

std::string EngineConfig::validate() const {
  if (auto err = scheduler.validate(); !err.empty()) return err;
  return {};
}

std::string validate_request(const GenerationRequest& request, const ModelInfo& info,
                             int block_size, int num_blocks, bool has_detokenizer) {
  const auto n = static_cast<long>(request.prompt.size());
  if (n == 0) return "prompt must contain at least one token";
  for (int32_t t : request.prompt)
    if (t < 0 || t >= info.vocab_size)
      return "prompt token id " + std::to_string(t) + " is outside the vocabulary [0, " +
             std::to_string(info.vocab_size) + ")";
  if (n >= info.max_seq_len)
    return "prompt of " + std::to_string(n) + " tokens does not fit the context length of " +
           std::to_string(info.max_seq_len) + " tokens (it must leave room for one token)";
  const long blocks_needed = (n + 1 + block_size - 1) / block_size;
  if (blocks_needed > num_blocks)
    return "prompt of " + std::to_string(n) + " tokens needs " + std::to_string(blocks_needed) +
           " KV blocks, the cache has " + std::to_string(num_blocks);
  if (request.priority < 0 || request.priority > 2)
    return "priority must be 0 (vip), 1 (standard) or 2 (batch)";
  if (auto err = request.params.validate(); !err.empty()) return err;
  if (!request.params.stop.empty() && !has_detokenizer)
    return "stop strings need a detokenizer, and this engine has none";
  if (!request.on_event) return "a request needs an event callback";
  return {};
}

struct EngineCore::Request {
  Request(RequestId id_, GenerationRequest&& r, std::uint64_t seed)
      : id(id_),
        params(std::move(r.params)),
        on_event(std::move(r.on_event)),
        deadline(r.deadline),
        sampling(seed, r.prompt),
        stop(params.stop),
        num_prompt(static_cast<int>(r.prompt.size())) {}

  RequestId id;
  SamplingParams params;
  GenerationCallback on_event;
  std::optional<sched::Clock::time_point> deadline;
  SamplingState sampling;
  StopStringMatcher stop;
  std::unique_ptr<IncrementalDetokenizer> detok;
  std::unordered_set<int32_t> stop_ids;
  int num_prompt;
  int max_new_tokens = 0;
  bool prompt_counted = false;
  sched::Clock::time_point arrival{};
  std::optional<sched::Clock::time_point> first_scheduled;
  std::optional<sched::Clock::time_point> last_token;
  Usage usage;
  RequestTiming timing;
};

EngineCore::EngineCore(ModelRunner& runner, EngineConfig config, sched::Clock& clock,
                       DetokenizerFactory detokenizer, EngineObserver* observer)
    : runner_(runner),
      info_(runner.info()),
      config_(std::move(config)),
      clock_(clock),
      detokenizer_(std::move(detokenizer)),
      observer_(observer),
      blocks_(KvBlockManagerConfig{runner.num_blocks(), runner.block_size(),
                                   config_.enable_prefix_caching}),
      scheduler_(config_.scheduler, blocks_),
      seed_state_(config_.seed) {
  if (auto err = config_.validate(); !err.empty()) throw std::invalid_argument(err);
}

EngineCore::~EngineCore() = default;

namespace {
std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
}  // namespace

std::string EngineCore::add_request(RequestId id, GenerationRequest request,
                                    std::optional<sched::Clock::time_point> arrival) {
  if (auto err = validate_request(request, info_, blocks_.block_size(),
                                  blocks_.num_total_blocks(), static_cast<bool>(detokenizer_));
      !err.empty())
    return err;
  if (requests_.count(id) != 0) return "duplicate request id";
  const std::uint64_t seed = request.params.seed ? *request.params.seed : splitmix64(seed_state_);
  auto seq = std::make_unique<Sequence>();
  seq->id = id;
  seq->priority = request.priority;
  seq->arrival = next_arrival_++;
  seq->tokens = request.prompt;
  seq->num_prompt_tokens = static_cast<int>(request.prompt.size());

  auto req = std::make_unique<Request>(id, std::move(request), seed);
  req->arrival = arrival ? *arrival : clock_.now();
  req->max_new_tokens = std::min(req->params.max_tokens, info_.max_seq_len - req->num_prompt);
  req->stop_ids.insert(req->params.stop_token_ids.begin(), req->params.stop_token_ids.end());
  if (!req->params.ignore_eos && info_.eos_id >= 0) req->stop_ids.insert(info_.eos_id);
  if (detokenizer_) req->detok = detokenizer_(seq->tokens);
  req->usage.prompt_tokens = req->num_prompt;
  requests_.emplace(id, std::move(req));
  scheduler_.add(std::move(seq));
  return {};
}

void EngineCore::cancel(RequestId id, std::string why) {
  pending_cancels_.emplace_back(id, std::move(why));
}

void EngineCore::abort_all(FinishReason reason, const std::string& why) {
  pending_cancels_.clear();
  std::vector<RequestId> ids;
  ids.reserve(requests_.size());
  for (const auto& [id, req] : requests_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  for (RequestId id : ids) finish(id, reason, why);
}

double EngineCore::seconds_since(sched::Clock::time_point t) const {
  return std::chrono::duration<double>(clock_.now() - t).count();
}

void EngineCore::emit(Request& req, GenerationEvent&& ev) {
  try {
    req.on_event(std::move(ev));
  } catch (...) {
    // A caller's callback must not take the engine thread down; its request still finishes.
  }
}

void EngineCore::apply_cancellations() {
  auto cancels = std::move(pending_cancels_);
  pending_cancels_.clear();
  for (auto& [id, why] : cancels) finish(id, FinishReason::cancelled, std::move(why));
  const auto now = clock_.now();
  std::vector<RequestId> expired;
  for (const auto& [id, req] : requests_)
    if (req->deadline && *req->deadline <= now) expired.push_back(id);
  std::sort(expired.begin(), expired.end());
  for (RequestId id : expired) finish(id, FinishReason::cancelled, "deadline exceeded");
}

void EngineCore::finish(RequestId id, FinishReason reason, std::string message,
                        std::optional<int32_t> stop_token, std::string stop_string) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return;  // already finished (e.g. a late cancel)
  Request& req = *it->second;
  FinishedEvent fe;
  fe.id = id;
  fe.reason = reason;
  fe.message = std::move(message);
  fe.stop_token_id = stop_token;
  fe.stop_string = std::move(stop_string);
  if (const Sequence* seq = scheduler_.find(id)) {
    req.usage.completion_tokens = seq->num_generated();
    req.timing.num_preemptions = seq->num_preemptions;
  }
  fe.usage = req.usage;
  req.timing.e2e_latency = seconds_since(req.arrival);
  if (!req.first_scheduled) req.timing.queue_time = req.timing.e2e_latency;
  fe.timing = std::move(req.timing);
  scheduler_.remove(id);  // frees its KV blocks now
  ++totals_.requests_finished_total[static_cast<std::size_t>(reason)];
  if (observer_) observer_->on_request_finished(fe);
  emit(req, std::move(fe));
  requests_.erase(it);
}

void EngineCore::step() {
  apply_cancellations();
  SchedulerOutput out = scheduler_.schedule();
  for (auto& f : out.failed) finish(f.id, FinishReason::error, std::move(f.message));
  if (out.empty()) {
    if (observer_) observer_->on_step(stats());
    return;
  }

  StepBatch batch;
  batch.seqs.reserve(out.scheduled.size());
  int expected_rows = 0;
  const auto now = clock_.now();
  for (const ScheduledSeq& s : out.scheduled) {
    Sequence& seq = *s.seq;
    Request& req = *requests_.at(seq.id);
    if (!req.first_scheduled) {
      req.first_scheduled = now;
      req.timing.queue_time = std::chrono::duration<double>(now - req.arrival).count();
      req.usage.cached_prompt_tokens = std::min(seq.num_computed, req.num_prompt);
    }
    StepSequence ss;
    ss.tokens.assign(seq.tokens.begin() + seq.num_computed,
                     seq.tokens.begin() + seq.num_computed + s.num_tokens);
    ss.start_pos = seq.num_computed;
    ss.block_table = blocks_.block_table(seq.id);
    ss.want_logits = s.want_logits;
    expected_rows += s.want_logits ? 1 : 0;
    batch.seqs.push_back(std::move(ss));
  }

  StepOutput result;
  std::string error;
  try {
    result = runner_.step(batch);
    const auto vocab = static_cast<std::size_t>(info_.vocab_size);
    if (result.rows != expected_rows ||
        result.logits.size() != static_cast<std::size_t>(expected_rows) * vocab)
      error = "model returned " + std::to_string(result.rows) + " logits rows, expected " +
              std::to_string(expected_rows);
  } catch (const std::exception& e) {
    error = std::string("model step failed: ") + e.what();
  }
  ++totals_.steps_total;
  if (!error.empty()) {
    // The KV content written by a failed step is unknown: fail the step's requests rather
    // than risk wrong output; the others continue.
    for (const ScheduledSeq& s : out.scheduled) finish(s.seq->id, FinishReason::error, error);
    if (observer_) observer_->on_step(stats());
    return;
  }

  scheduler_.on_step_done(out);
  std::size_t row = 0;
  const auto vocab = static_cast<std::size_t>(info_.vocab_size);
  for (const ScheduledSeq& s : out.scheduled) {
    Sequence& seq = *s.seq;
    Request& req = *requests_.at(seq.id);
    if (!req.prompt_counted && seq.prefill_done_once) {
      req.prompt_counted = true;
      totals_.prompt_tokens_total += static_cast<std::uint64_t>(req.num_prompt);
    }
    if (!s.want_logits) continue;
    std::span<const float> logits(result.logits.data() + row * vocab, vocab);
    ++row;
    process_sample(req, seq, logits);  // may finish (and destroy) req and seq
  }
  if (observer_) observer_->on_step(stats());
}

void EngineCore::process_sample(Request& req, Sequence& seq, std::span<const float> logits) {
  const SampleResult r = sample_token(logits, req.params, req.sampling);
  const int32_t tok = r.token;
  scheduler_.append_token(seq.id, tok);
  req.sampling.on_token(tok);
  ++totals_.generation_tokens_total;

  const auto now = clock_.now();
  if (!req.last_token)
    req.timing.time_to_first_token = std::chrono::duration<double>(now - req.arrival).count();
  else
    req.timing.inter_token_latencies.push_back(
        std::chrono::duration<double>(now - *req.last_token).count());
  req.last_token = now;

  TokenEvent ev;
  ev.id = req.id;
  ev.token_ids.push_back(tok);
  if (req.params.logprobs) ev.logprobs.push_back({r.logprob, r.top});

  std::optional<FinishReason> reason;
  std::optional<int32_t> stop_token;
  std::string stop_string;
  if (req.stop_ids.count(tok) != 0) {
    // The stop token counts as generated but contributes no text (as in vLLM and OpenAI).
    reason = FinishReason::stop;
    stop_token = tok;
    if (req.detok) ev.text = req.stop.push(req.detok->finish()).text;
    if (!req.stop.stopped()) ev.text += req.stop.flush();
  } else {
    const bool at_limit = seq.num_generated() >= req.max_new_tokens ||
                          static_cast<int>(seq.tokens.size()) >= info_.max_seq_len;
    std::string delta;
    if (req.detok) {
      delta = req.detok->push(tok);
      if (at_limit) delta += req.detok->finish();
    }
    StopStringMatcher::Result m = req.stop.push(delta);
    ev.text = std::move(m.text);
    if (m.stopped) {
      reason = FinishReason::stop;
      stop_string = std::move(m.matched);
    } else if (at_limit) {
      ev.text += req.stop.flush();
      reason = FinishReason::length;
    }
  }
  const RequestId id = req.id;
  emit(req, std::move(ev));
  if (reason) finish(id, *reason, {}, stop_token, std::move(stop_string));
}

EngineStats EngineCore::stats() const {
  EngineStats s = totals_;
  s.num_running = scheduler_.num_running();
  s.num_waiting = scheduler_.num_waiting();
  s.num_free_blocks = blocks_.num_free_blocks();
  s.num_total_blocks = blocks_.num_total_blocks();
  s.kv_cache_usage = blocks_.usage();
  s.num_preemptions_total = scheduler_.num_preemptions();
  s.prefix_cache_queries_total = blocks_.prefix_stats().queries;
  s.prefix_cache_hits_total = blocks_.prefix_stats().hits;
  // The first never-scheduled sequence of each priority in admission order is its oldest.
  int found = 0;
  for (const Sequence* seq : scheduler_.waiting()) {
    const auto p = static_cast<std::size_t>(std::clamp(seq->priority, 0, 2));
    if (s.oldest_unscheduled[p]) continue;
    auto it = requests_.find(seq->id);
    if (it == requests_.end() || it->second->first_scheduled) continue;
    s.oldest_unscheduled[p] = it->second->arrival;
    if (++found == 3) break;
  }
  return s;
}

}  // namespace talkserve::llm
