#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>

#include "talkserve/llm/scheduler.hpp"

using namespace talkserve::llm;

namespace {

std::uint64_t g_arrival = 0;

std::unique_ptr<Sequence> make_seq(SeqId id, int priority, int prompt_len) {
  auto s = std::make_unique<Sequence>();
  s->id = id;
  s->priority = priority;
  s->arrival = g_arrival++;
  s->tokens.resize(static_cast<std::size_t>(prompt_len));
  std::iota(s->tokens.begin(), s->tokens.end(), static_cast<int32_t>(id * 1000));
  s->num_prompt_tokens = prompt_len;
  return s;
}

// Plays the model: completes the step and appends a token to every sequence that sampled.
void complete(ContinuousBatchScheduler& s, const SchedulerOutput& out) {
  s.on_step_done(out);
  for (const auto& sc : out.scheduled)
    if (sc.want_logits) s.append_token(sc.seq->id, 7);
}

std::vector<SeqId> ids(const SchedulerOutput& out) {
  std::vector<SeqId> v;
  for (const auto& sc : out.scheduled) v.push_back(sc.seq->id);
  return v;
}

}  // namespace

TEST_CASE("scheduler: admission by priority, FIFO within a priority", "[llm][scheduler]") {
  KvBlockManager blocks({64, 4, true});
  ContinuousBatchScheduler s({/*max_num_seqs*/ 1, 64, 64}, blocks);
  s.add(make_seq(1, 1, 3));  // standard
  s.add(make_seq(2, 2, 3));  // batch
  s.add(make_seq(3, 0, 3));  // vip
  s.add(make_seq(4, 1, 3));  // standard, after 1
  std::vector<SeqId> order;
  while (s.has_work()) {
    auto out = s.schedule();
    REQUIRE(out.scheduled.size() == 1);
    order.push_back(out.scheduled[0].seq->id);
    complete(s, out);
    s.remove(out.scheduled[0].seq->id);
  }
  CHECK(order == std::vector<SeqId>{3, 1, 4, 2});
  CHECK(blocks.num_free_blocks() == 64);
}

TEST_CASE("scheduler: decodes come first, then prefill chunks within the token budget",
          "[llm][scheduler]") {
  KvBlockManager blocks({64, 4, true});
  ContinuousBatchScheduler s({8, /*max_num_batched_tokens*/ 10, /*max_prefill_chunk*/ 16}, blocks);
  s.add(make_seq(1, 1, 3));
  auto out = s.schedule();
  REQUIRE(ids(out) == std::vector<SeqId>{1});
  CHECK(out.scheduled[0].num_tokens == 3);
  CHECK(out.scheduled[0].want_logits);
  complete(s, out);

  // B is vip but arrives while A decodes: A's decode token still goes first.
  s.add(make_seq(2, 0, 20));
  std::vector<int> chunks;
  for (int step = 0; step < 3; ++step) {
    out = s.schedule();
    REQUIRE(out.scheduled.size() == 2);
    CHECK(out.scheduled[0].seq->id == 1);
    CHECK(out.scheduled[0].num_tokens == 1);
    CHECK(out.scheduled[1].seq->id == 2);
    CHECK(out.num_batched_tokens <= 10);
    chunks.push_back(out.scheduled[1].num_tokens);
    CHECK(out.scheduled[1].want_logits == (step == 2));
    complete(s, out);
  }
  CHECK(chunks == std::vector<int>{9, 9, 2});
  // Both decode now.
  out = s.schedule();
  CHECK(out.num_batched_tokens == 2);
  CHECK(ids(out) == std::vector<SeqId>{2, 1});  // running order: priority first
}

TEST_CASE("scheduler: max_prefill_chunk caps one sequence's chunk", "[llm][scheduler]") {
  KvBlockManager blocks({64, 4, true});
  ContinuousBatchScheduler s({8, 100, /*max_prefill_chunk*/ 4}, blocks);
  s.add(make_seq(1, 1, 10));
  s.add(make_seq(2, 1, 3));
  auto out = s.schedule();
  REQUIRE(out.scheduled.size() == 2);
  CHECK(out.scheduled[0].num_tokens == 4);
  CHECK_FALSE(out.scheduled[0].want_logits);
  CHECK(out.scheduled[1].num_tokens == 3);
  complete(s, out);
  out = s.schedule();
  // Seq 2 decodes (1), seq 1 continues its prefill (4).
  REQUIRE(out.scheduled.size() == 2);
  CHECK(out.scheduled[0].seq->id == 2);
  CHECK(out.scheduled[1].num_tokens == 4);
}

TEST_CASE("scheduler: max_num_seqs bounds the running set", "[llm][scheduler]") {
  KvBlockManager blocks({64, 4, true});
  ContinuousBatchScheduler s({2, 100, 100}, blocks);
  for (SeqId i = 1; i <= 3; ++i) s.add(make_seq(i, 1, 2));
  auto out = s.schedule();
  CHECK(ids(out) == std::vector<SeqId>{1, 2});
  CHECK(s.num_running() == 2);
  CHECK(s.num_waiting() == 1);
}

TEST_CASE("scheduler: out of blocks preempts the lowest-priority newest running sequence",
          "[llm][scheduler]") {
  // 6 blocks of 2 tokens. Three prompts of 3 tokens take 2 blocks each; the first decode that
  // crosses into a third block finds none.
  KvBlockManager blocks({6, 2, false});
  ContinuousBatchScheduler s({8, 100, 100}, blocks);
  s.add(make_seq(1, 2, 3));  // batch, oldest
  s.add(make_seq(2, 0, 3));  // vip
  s.add(make_seq(3, 2, 3));  // batch, newest  <- the victim
  auto out = s.schedule();
  REQUIRE(out.scheduled.size() == 3);
  complete(s, out);  // 4 tokens each, 3 computed
  out = s.schedule();  // decode at position 3: still within 2 blocks
  REQUIRE(out.preempted.empty());
  complete(s, out);  // 5 tokens each, 4 computed; the next decode needs a third block
  out = s.schedule();
  // vip 2 needs a third block: the victim is 3 (batch, newest), not 1 (batch, older).
  CHECK(out.preempted == std::vector<SeqId>{3});
  CHECK(ids(out) == std::vector<SeqId>{2, 1});
  CHECK(s.num_preemptions() == 1);
  Sequence* victim = s.find(3);
  REQUIRE(victim != nullptr);
  CHECK(victim->status == SeqStatus::waiting);
  CHECK(victim->num_computed == 0);
  CHECK(victim->tokens.size() == 5);  // generated tokens kept for the recompute
  complete(s, out);
  out = s.schedule();  // 3 cannot come back yet (no block, nobody of lower priority)
  CHECK(out.preempted.empty());
  CHECK(ids(out) == std::vector<SeqId>{2, 1});
  complete(s, out);  // 7 tokens each: the next decode needs a fourth block
  out = s.schedule();
  // 2 takes 1's blocks: 1 is now the lowest-priority newest running sequence.
  CHECK(out.preempted == std::vector<SeqId>{1});
  CHECK(ids(out) == std::vector<SeqId>{2});
  complete(s, out);
  s.remove(2);
  // 1 resumes before 3 (same priority, older), re-prefilling prompt + generated tokens.
  out = s.schedule();
  REQUIRE(ids(out) == std::vector<SeqId>{1});
  CHECK(out.scheduled[0].num_tokens == 7);
  CHECK(out.scheduled[0].want_logits);
  CHECK(s.find(1)->num_preemptions == 1);
}

TEST_CASE("scheduler: a waiting vip preempts a running batch sequence, not the reverse",
          "[llm][scheduler]") {
  KvBlockManager blocks({4, 2, false});
  ContinuousBatchScheduler s({8, 100, 100}, blocks);
  s.add(make_seq(1, 2, 7));  // batch: 4 blocks, the whole cache
  auto out = s.schedule();
  complete(s, out);
  s.add(make_seq(2, 1, 3));  // standard: may preempt batch
  out = s.schedule();
  CHECK(out.preempted == std::vector<SeqId>{1});
  CHECK(ids(out) == std::vector<SeqId>{2});
  complete(s, out);
  s.add(make_seq(3, 1, 7));  // standard, same priority as the runner: it waits
  out = s.schedule();
  CHECK(out.preempted.empty());
  CHECK(ids(out) == std::vector<SeqId>{2});
  CHECK(s.num_waiting() == 2);
}

TEST_CASE("scheduler: a sequence that cannot fit even alone fails instead of waiting forever",
          "[llm][scheduler]") {
  KvBlockManager blocks({3, 2, false});
  ContinuousBatchScheduler s({8, 100, 100}, blocks);
  s.add(make_seq(1, 1, 5));  // fits: 3 blocks
  auto out = s.schedule();
  REQUIRE(out.failed.empty());
  complete(s, out);  // 6 tokens, 5 computed, the decode needs 3 blocks: ok
  out = s.schedule();
  REQUIRE(out.failed.empty());
  complete(s, out);  // 7 tokens: needs a fourth block, nobody to preempt
  out = s.schedule();
  REQUIRE(out.failed.size() == 1);
  CHECK(out.failed[0].id == 1);
  CHECK_THAT(out.failed[0].message, Catch::Contains("KV blocks"));
  CHECK_FALSE(s.has_work());
  CHECK(blocks.num_free_blocks() == 3);

  s.add(make_seq(2, 1, 9));  // 5 blocks for the prompt alone
  out = s.schedule();
  REQUIRE(out.failed.size() == 1);
  CHECK(out.failed[0].id == 2);
}
