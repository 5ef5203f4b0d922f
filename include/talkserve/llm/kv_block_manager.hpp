#pragma once
// Bookkeeping of the paged KV cache: which physical block each sequence holds.
//
// The model owns the K/V storage ([num_blocks, block_size, ...] per layer); this class only
// decides which block ids a sequence writes to. Blocks have reference counts so that full
// blocks with identical content (same tokens after the same prefix) can be shared between
// sequences (prefix caching):
//   - a FULL block is identified by a hash chain: hash(parent block's hash, its token ids);
//   - a sequence starting with known full blocks attaches them (ref count + 1) and skips their
//     prefill; at least the last token is always left to recompute so that logits exist;
//   - only full, committed blocks are ever shared; a sequence's last (partial) block is always
//     private, so no shared block is ever written;
//   - a freed block that holds cached content goes to an LRU of evictable blocks: it can be
//     re-attached until it is reused, which happens (evicting its hash) only when the free
//     list is empty.
// Prefix-cache statistics are counted in TOKENS (as vLLM does): each admission of a sequence
// (including re-admission after preemption) adds its token count to `queries` and the token
// count covered by shared cached blocks to `hits` (see record_prefix_query()).
//
// Thread-safety: none; used by the engine thread only.

#include <cstdint>
#include <deque>
#include <list>
#include <span>
#include <unordered_map>
#include <vector>

namespace talkserve::llm {

using SeqId = std::uint64_t;

// The parent hash of a sequence's first block.
inline constexpr std::uint64_t kKvRootHash = 0x9e3779b97f4a7c15ull;

struct KvBlockManagerConfig {
  int num_blocks = 0;
  int block_size = 16;
  bool enable_prefix_caching = true;
};

struct PrefixCacheStats {
  std::uint64_t queries = 0;  // tokens looked up
  std::uint64_t hits = 0;     // tokens found in cached blocks
};

class KvBlockManager {
 public:
  explicit KvBlockManager(KvBlockManagerConfig config);

  int block_size() const { return config_.block_size; }
  int num_total_blocks() const { return config_.num_blocks; }
  bool prefix_caching_enabled() const { return config_.enable_prefix_caching; }
  // Blocks an allocation can take: the free list plus evictable cached blocks.
  int num_free_blocks() const;
  // Blocks holding reusable cached content (referenced or evictable).
  int num_cached_blocks() const { return static_cast<int>(cached_.size()); }
  // Fraction of blocks referenced by at least one sequence (0..1).
  double usage() const;
  int blocks_for_tokens(int num_tokens) const;

  // Attaches the longest run of cached full blocks that prefixes `tokens` to `seq`, which must
  // hold no blocks. Never covers the last token. Returns the number of tokens covered (a
  // multiple of block_size). Returns 0 when caching is off.
  int attach_cached_prefix(SeqId seq, std::span<const int32_t> tokens);
  // Counts one prefix-cache query. Separate from attach_cached_prefix() so that a lookup
  // whose admission is retried later is counted once, when it is admitted.
  void record_prefix_query(std::size_t num_tokens, int num_hit_tokens);

  // Grows seq's block table to cover `num_tokens` token slots. All or nothing: returns false,
  // changing nothing, when there are not enough free blocks.
  bool allocate_slots(SeqId seq, int num_tokens);

  // Tells the manager that the first `num_computed` of `tokens` are now in the cache, so the
  // blocks that became full can be hashed and offered to other sequences.
  void commit_computed(SeqId seq, std::span<const int32_t> tokens, int num_computed);

  // Releases every block of `seq` (finish, cancel or preemption). Cached blocks become
  // evictable; the tail is released first so that the shared prefix is evicted last.
  void free(SeqId seq);

  // Physical block ids of `seq` in position order (empty if unknown).
  const std::vector<int32_t>& block_table(SeqId seq) const;
  bool has_sequence(SeqId seq) const { return seqs_.count(seq) != 0; }
  int ref_count(int32_t block) const { return blocks_.at(block).ref; }
  const PrefixCacheStats& prefix_stats() const { return prefix_stats_; }

 private:
  struct Block {
    int ref = 0;
    bool cached = false;           // in cached_ under `hash`
    std::uint64_t hash = 0;
    std::uint64_t parent_hash = 0;
    std::vector<int32_t> tokens;   // content, checked on lookup so a hash collision is harmless
    bool in_lru = false;
    std::list<int32_t>::iterator lru_pos;
  };
  struct SeqBlocks {
    std::vector<int32_t> table;
    int num_committed_blocks = 0;  // leading blocks already hashed (or known duplicates)
    std::uint64_t last_hash = kKvRootHash;  // hash of block num_committed_blocks - 1 (or the root)
  };

  int32_t take_block();  // from the free list, else evicts the least recently freed cached block
  void release(int32_t block);
  int32_t lookup(std::uint64_t parent, std::uint64_t hash, std::span<const int32_t> toks) const;

  KvBlockManagerConfig config_;
  std::vector<Block> blocks_;
  std::deque<int32_t> free_;          // blocks without reusable content
  std::list<int32_t> evictable_;      // ref 0 but cached; front = least recently freed
  std::unordered_map<std::uint64_t, int32_t> cached_;
  std::unordered_map<SeqId, SeqBlocks> seqs_;
  int num_referenced_ = 0;
  PrefixCacheStats prefix_stats_;
};

// The hash chain link of one full block (exposed for tests).
std::uint64_t kv_block_hash(std::uint64_t parent_hash, std::span<const int32_t> tokens);

}  // namespace talkserve::llm
