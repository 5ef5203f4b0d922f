#include "talkserve/llm/scheduler.hpp"

#include <algorithm>
#include <stdexcept>

namespace talkserve::llm {

namespace {

bool before(const Sequence* a, const Sequence* b) {
  if (a->priority != b->priority) return a->priority < b->priority;
  return a->arrival < b->arrival;
}

}  // namespace

std::string SchedulerConfig::validate() const {
  if (max_num_seqs <= 0) return "llm.max_num_seqs must be > 0";
  if (max_num_batched_tokens <= 0) return "llm.max_num_batched_tokens must be > 0";
  if (max_num_batched_tokens < max_num_seqs)
    return "llm.max_num_batched_tokens must be >= llm.max_num_seqs (every running sequence "
           "needs one decode token per step)";
  if (max_prefill_chunk <= 0) return "llm.max_prefill_chunk must be > 0";
  return {};
}

ContinuousBatchScheduler::ContinuousBatchScheduler(SchedulerConfig config, KvBlockManager& blocks)
    : config_(config), blocks_(blocks) {
  if (auto err = config_.validate(); !err.empty()) throw std::invalid_argument(err);
}

void ContinuousBatchScheduler::add(std::unique_ptr<Sequence> seq) {
  if (!seq || seq->tokens.empty()) throw std::invalid_argument("scheduler: empty sequence");
  Sequence* raw = seq.get();
  raw->status = SeqStatus::waiting;
  if (!seqs_.emplace(raw->id, std::move(seq)).second)
    throw std::invalid_argument("scheduler: duplicate sequence id");
  insert_waiting(raw);
}

Sequence* ContinuousBatchScheduler::find(SeqId id) {
  auto it = seqs_.find(id);
  return it == seqs_.end() ? nullptr : it->second.get();
}

void ContinuousBatchScheduler::insert_waiting(Sequence* seq) {
  waiting_.insert(std::upper_bound(waiting_.begin(), waiting_.end(), seq, before), seq);
}

void ContinuousBatchScheduler::insert_running(Sequence* seq) {
  running_.insert(std::upper_bound(running_.begin(), running_.end(), seq, before), seq);
}

void ContinuousBatchScheduler::erase_from(std::vector<Sequence*>& v, const Sequence* seq) {
  v.erase(std::remove(v.begin(), v.end(), seq), v.end());
}

Sequence* ContinuousBatchScheduler::pick_victim(int min_victim_priority,
                                                const Sequence* exclude) const {
  // running_ is sorted by (priority, arrival): the lowest-priority, newest is at the back.
  for (auto it = running_.rbegin(); it != running_.rend(); ++it) {
    if (*it == exclude) continue;
    return (*it)->priority >= min_victim_priority ? *it : nullptr;
  }
  return nullptr;
}

void ContinuousBatchScheduler::preempt(Sequence& victim, SchedulerOutput& out) {
  blocks_.free(victim.id);
  victim.num_computed = 0;
  victim.status = SeqStatus::waiting;
  ++victim.num_preemptions;
  ++num_preemptions_;
  erase_from(running_, &victim);
  insert_waiting(&victim);
  out.preempted.push_back(victim.id);
  auto it = std::find_if(out.scheduled.begin(), out.scheduled.end(),
                         [&](const ScheduledSeq& s) { return s.seq == &victim; });
  if (it != out.scheduled.end()) {
    out.num_batched_tokens -= it->num_tokens;
    out.scheduled.erase(it);
  }
}

void ContinuousBatchScheduler::fail(Sequence& seq, std::string message, SchedulerOutput& out) {
  out.failed.push_back({seq.id, std::move(message)});
  remove(seq.id);
}

bool ContinuousBatchScheduler::grow_or_preempt(Sequence& seq, int num_tokens,
                                               int min_victim_priority, SchedulerOutput& out) {
  while (!blocks_.allocate_slots(seq.id, num_tokens)) {
    Sequence* victim = pick_victim(min_victim_priority, &seq);
    if (victim == nullptr) return false;
    // Running sequences are only ever preempted from the back, so a running `seq` that is
    // itself the back is preempted by its caller rather than evicting better sequences.
    if (seq.status == SeqStatus::running && before(victim, &seq)) return false;
    preempt(*victim, out);
  }
  return true;
}

SchedulerOutput ContinuousBatchScheduler::schedule() {
  SchedulerOutput out;
  const int budget_max = config_.max_num_batched_tokens;
  auto budget = [&] { return budget_max - out.num_batched_tokens; };

  // Phases 1 and 2 walk a snapshot: preemption mutates running_.
  const std::vector<Sequence*> snapshot = running_;
  auto schedule_running = [&](Sequence* seq, int n) {
    if (seq->status != SeqStatus::running) return;  // preempted earlier in this call
    const int target = seq->num_computed + n;
    if (!grow_or_preempt(*seq, target, 0, out)) {
      if (running_.size() == 1) {
        fail(*seq,
             "sequence of " + std::to_string(target) + " tokens needs " +
                 std::to_string(blocks_.blocks_for_tokens(target)) +
                 " KV blocks, more than the cache holds (" +
                 std::to_string(blocks_.num_total_blocks()) + ")",
             out);
      } else {
        preempt(*seq, out);
      }
      return;
    }
    out.scheduled.push_back({seq, n, seq->num_computed + n == static_cast<int>(seq->tokens.size())});
    out.num_batched_tokens += n;
  };

  // 1. One decode token for every decoding sequence.
  for (Sequence* seq : snapshot) {
    if (seq->num_uncomputed() != 1) continue;
    if (budget() < 1) break;
    schedule_running(seq, 1);
  }
  // 2. Next chunk of running sequences part way through their (re)prefill. A fresh snapshot:
  // phase 1 may have removed (failed) a sequence of the first one.
  const std::vector<Sequence*> prefilling = running_;
  for (Sequence* seq : prefilling) {
    if (seq->status != SeqStatus::running || seq->num_uncomputed() <= 1) continue;
    const int n = std::min({seq->num_uncomputed(), budget(), config_.max_prefill_chunk});
    if (n <= 0) break;
    schedule_running(seq, n);
  }
  // 3. Admission.
  while (!waiting_.empty() && static_cast<int>(running_.size()) < config_.max_num_seqs &&
         budget() > 0) {
    Sequence* seq = waiting_.front();
    // A sequence preempted in this very call waits at least one step: re-admitting it now
    // would only thrash.
    if (std::find(out.preempted.begin(), out.preempted.end(), seq->id) != out.preempted.end())
      break;
    const int hits = seq->num_computed == 0 && !blocks_.has_sequence(seq->id)
                         ? blocks_.attach_cached_prefix(seq->id, seq->tokens)
                         : 0;
    seq->num_computed = hits;
    const int n = std::min({seq->num_uncomputed(), budget(), config_.max_prefill_chunk});
    const int target = seq->num_computed + n;
    if (!grow_or_preempt(*seq, target, seq->priority + 1, out)) {
      blocks_.free(seq->id);  // give back any attached prefix: it stays cached (evictable)
      seq->num_computed = 0;
      if (running_.empty() && out.scheduled.empty()) {
        fail(*seq,
             "prompt chunk of " + std::to_string(target) + " tokens needs " +
                 std::to_string(blocks_.blocks_for_tokens(target)) +
                 " KV blocks, more than the cache holds (" +
                 std::to_string(blocks_.num_total_blocks()) + ")",
             out);
        continue;
      }
      break;  // strict priority order: nothing behind it jumps the queue
    }
    blocks_.record_prefix_query(seq->tokens.size(), hits);
    waiting_.erase(waiting_.begin());
    seq->status = SeqStatus::running;
    insert_running(seq);
    out.scheduled.push_back({seq, n, target == static_cast<int>(seq->tokens.size())});
    out.num_batched_tokens += n;
  }
  return out;
}

void ContinuousBatchScheduler::on_step_done(const SchedulerOutput& out) {
  for (const ScheduledSeq& s : out.scheduled) {
    Sequence* seq = s.seq;
    seq->num_computed += s.num_tokens;
    if (seq->num_computed >= seq->num_prompt_tokens) seq->prefill_done_once = true;
    blocks_.commit_computed(seq->id, seq->tokens, seq->num_computed);
  }
}

void ContinuousBatchScheduler::append_token(SeqId id, int32_t token) {
  Sequence* seq = find(id);
  if (seq == nullptr) throw std::invalid_argument("scheduler: append to unknown sequence");
  seq->tokens.push_back(token);
}

void ContinuousBatchScheduler::remove(SeqId id) {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return;
  Sequence* seq = it->second.get();
  blocks_.free(id);
  erase_from(running_, seq);
  erase_from(waiting_, seq);
  seqs_.erase(it);
}

}  // namespace talkserve::llm
