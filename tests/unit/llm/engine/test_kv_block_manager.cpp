#include <catch2/catch.hpp>

#include <numeric>

#include "talkserve/llm/kv_block_manager.hpp"

using namespace talkserve::llm;

namespace {
std::vector<int32_t> iota_tokens(int n, int start = 100) {
  std::vector<int32_t> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), start);
  return v;
}
}  // namespace

TEST_CASE("kv blocks: allocation grows by whole blocks and is all or nothing", "[llm][kv]") {
  KvBlockManager m({8, 4, true});
  CHECK(m.num_free_blocks() == 8);
  REQUIRE(m.allocate_slots(1, 5));  // 2 blocks
  CHECK(m.block_table(1).size() == 2);
  REQUIRE(m.allocate_slots(1, 8));  // still 2
  CHECK(m.block_table(1).size() == 2);
  REQUIRE(m.allocate_slots(1, 9));
  CHECK(m.block_table(1).size() == 3);
  CHECK(m.num_free_blocks() == 5);
  CHECK(m.usage() == Approx(3.0 / 8));
  // 6 blocks needed, 5 free: refused without taking any.
  CHECK_FALSE(m.allocate_slots(2, 24));
  CHECK(m.num_free_blocks() == 5);
  CHECK(m.block_table(2).empty());
  m.free(1);
  CHECK(m.num_free_blocks() == 8);
  CHECK(m.usage() == 0.0);
}

TEST_CASE("kv blocks: a known prefix is shared with ref counts and counted as hits", "[llm][kv]") {
  KvBlockManager m({16, 4, true});
  auto prompt = iota_tokens(10);  // 2 full blocks + 2 tokens
  CHECK(m.attach_cached_prefix(1, prompt) == 0);
  REQUIRE(m.allocate_slots(1, 10));
  m.commit_computed(1, prompt, 10);
  CHECK(m.num_cached_blocks() == 2);

  auto other = prompt;
  other.resize(12);
  other[10] = 7;
  other[11] = 8;
  const int hit = m.attach_cached_prefix(2, other);
  CHECK(hit == 8);
  m.record_prefix_query(other.size(), hit);
  const auto& t1 = m.block_table(1);
  const auto& t2 = m.block_table(2);
  REQUIRE(t2.size() == 2);
  CHECK(t2[0] == t1[0]);
  CHECK(t2[1] == t1[1]);
  CHECK(m.ref_count(t1[0]) == 2);
  CHECK(m.ref_count(t1[2]) == 1);  // the partial block stays private
  REQUIRE(m.allocate_slots(2, 13));
  CHECK(m.block_table(2)[2] != t1[2]);
  CHECK(m.prefix_stats().queries == 12);
  CHECK(m.prefix_stats().hits == 8);

  // A different first block breaks the chain even if later blocks match.
  auto diverged = prompt;
  diverged[0] = 1;
  CHECK(m.attach_cached_prefix(3, diverged) == 0);
  m.free(3);

  m.free(1);
  m.free(2);
  CHECK(m.num_free_blocks() == 16);
}

TEST_CASE("kv blocks: the last token is always recomputed", "[llm][kv]") {
  KvBlockManager m({16, 4, true});
  auto prompt = iota_tokens(8);  // exactly 2 full blocks
  REQUIRE(m.allocate_slots(1, 8));
  m.commit_computed(1, prompt, 8);
  CHECK(m.num_cached_blocks() == 2);
  // Same 8 tokens: only the first block may be shared, the second holds the last token.
  CHECK(m.attach_cached_prefix(2, prompt) == 4);
}

TEST_CASE("kv blocks: freed cached blocks are evictable LRU, reused only when the free list is empty",
          "[llm][kv]") {
  KvBlockManager m({4, 2, true});
  auto a = iota_tokens(5, 10);  // blocks: [10 11] [12 13] [14]
  REQUIRE(m.allocate_slots(1, 5));
  m.commit_computed(1, a, 5);
  const auto table_a = m.block_table(1);
  m.free(1);
  CHECK(m.num_free_blocks() == 4);
  CHECK(m.num_cached_blocks() == 2);

  // Two plain blocks are free (the never-used one and A's uncached partial block): they are
  // taken before any cached one.
  REQUIRE(m.allocate_slots(2, 2));
  CHECK(m.num_cached_blocks() == 2);
  REQUIRE(m.allocate_slots(2, 4));
  CHECK(m.num_cached_blocks() == 2);
  // ...and the next one must evict. The tail block [12 13] was freed first, so it goes first
  // and the shared head [10 11] survives.
  REQUIRE(m.allocate_slots(2, 6));
  CHECK(m.num_cached_blocks() == 1);
  CHECK(m.block_table(2)[2] == table_a[1]);
  CHECK(m.attach_cached_prefix(3, a) == 2);
  CHECK(m.block_table(3)[0] == table_a[0]);
  CHECK(m.ref_count(table_a[0]) == 1);
  CHECK(m.num_free_blocks() == 0);
  m.free(2);
  m.free(3);
  CHECK(m.num_free_blocks() == 4);
}

TEST_CASE("kv blocks: identical content computed twice is cached once", "[llm][kv]") {
  KvBlockManager m({8, 2, true});
  auto p = iota_tokens(3);
  REQUIRE(m.allocate_slots(1, 3));
  REQUIRE(m.allocate_slots(2, 3));
  m.commit_computed(1, p, 3);
  m.commit_computed(2, p, 3);
  CHECK(m.num_cached_blocks() == 1);
  m.free(1);
  m.free(2);
  CHECK(m.num_free_blocks() == 8);
}

TEST_CASE("kv blocks: prefix caching can be turned off", "[llm][kv]") {
  KvBlockManager m({8, 2, false});
  auto p = iota_tokens(5);
  REQUIRE(m.allocate_slots(1, 5));
  m.commit_computed(1, p, 5);
  CHECK(m.num_cached_blocks() == 0);
  CHECK(m.attach_cached_prefix(2, p) == 0);
  m.record_prefix_query(p.size(), 0);
  CHECK(m.prefix_stats().queries == 0);
  m.free(1);
  CHECK(m.num_free_blocks() == 8);
}
