#include "talkserve/llm/kv_block_manager.hpp"

#include <algorithm>
#include <stdexcept>

namespace talkserve::llm {

namespace {

std::uint64_t mix64(std::uint64_t x) {
  // splitmix64 finaliser: cheap and well distributed, enough for a table key whose content
  // is verified on lookup anyway.
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

const std::vector<int32_t> kEmptyTable;

}  // namespace

std::uint64_t kv_block_hash(std::uint64_t parent_hash, std::span<const int32_t> tokens) {
  std::uint64_t h = mix64(parent_hash);
  for (int32_t t : tokens) h = mix64(h ^ static_cast<std::uint32_t>(t));
  return mix64(h ^ tokens.size());
}

KvBlockManager::KvBlockManager(KvBlockManagerConfig config) : config_(config) {
  if (config_.num_blocks <= 0) throw std::invalid_argument("KvBlockManager: num_blocks must be > 0");
  if (config_.block_size <= 0) throw std::invalid_argument("KvBlockManager: block_size must be > 0");
  blocks_.resize(static_cast<std::size_t>(config_.num_blocks));
  for (int32_t b = 0; b < config_.num_blocks; ++b) free_.push_back(b);
}

int KvBlockManager::num_free_blocks() const {
  return static_cast<int>(free_.size() + evictable_.size());
}

double KvBlockManager::usage() const {
  return static_cast<double>(num_referenced_) / static_cast<double>(config_.num_blocks);
}

int KvBlockManager::blocks_for_tokens(int num_tokens) const {
  return (num_tokens + config_.block_size - 1) / config_.block_size;
}

int32_t KvBlockManager::lookup(std::uint64_t parent, std::uint64_t hash,
                               std::span<const int32_t> toks) const {
  auto it = cached_.find(hash);
  if (it == cached_.end()) return -1;
  const Block& b = blocks_[static_cast<std::size_t>(it->second)];
  if (b.parent_hash != parent || !std::equal(toks.begin(), toks.end(), b.tokens.begin(), b.tokens.end()))
    return -1;
  return it->second;
}

int KvBlockManager::attach_cached_prefix(SeqId seq, std::span<const int32_t> tokens) {
  if (!config_.enable_prefix_caching || tokens.empty()) return 0;
  SeqBlocks& s = seqs_[seq];
  if (!s.table.empty()) throw std::logic_error("attach_cached_prefix: sequence already holds blocks");
  const int bs = config_.block_size;
  // The last token is always recomputed: its logits are needed to sample the next one.
  const int max_blocks = static_cast<int>(tokens.size() - 1) / bs;
  std::uint64_t parent = kKvRootHash;
  for (int i = 0; i < max_blocks; ++i) {
    auto toks = tokens.subspan(static_cast<std::size_t>(i * bs), static_cast<std::size_t>(bs));
    const std::uint64_t h = kv_block_hash(parent, toks);
    const int32_t id = lookup(parent, h, toks);
    if (id < 0) break;
    Block& b = blocks_[static_cast<std::size_t>(id)];
    if (b.in_lru) {
      evictable_.erase(b.lru_pos);
      b.in_lru = false;
    }
    if (b.ref++ == 0) ++num_referenced_;
    s.table.push_back(id);
    parent = h;
  }
  s.num_committed_blocks = static_cast<int>(s.table.size());
  s.last_hash = parent;
  return static_cast<int>(s.table.size()) * bs;
}

void KvBlockManager::record_prefix_query(std::size_t num_tokens, int num_hit_tokens) {
  if (!config_.enable_prefix_caching) return;
  prefix_stats_.queries += num_tokens;
  prefix_stats_.hits += static_cast<std::uint64_t>(num_hit_tokens);
}

bool KvBlockManager::allocate_slots(SeqId seq, int num_tokens) {
  SeqBlocks& s = seqs_[seq];
  const int need = blocks_for_tokens(num_tokens) - static_cast<int>(s.table.size());
  if (need <= 0) return true;
  if (need > num_free_blocks()) {
    if (s.table.empty()) seqs_.erase(seq);
    return false;
  }
  for (int i = 0; i < need; ++i) s.table.push_back(take_block());
  return true;
}

int32_t KvBlockManager::take_block() {
  int32_t id;
  if (!free_.empty()) {
    id = free_.front();
    free_.pop_front();
  } else {
    id = evictable_.front();
    evictable_.pop_front();
    Block& ev = blocks_[static_cast<std::size_t>(id)];
    ev.in_lru = false;
    cached_.erase(ev.hash);
    ev.cached = false;
    ev.tokens.clear();
  }
  Block& b = blocks_[static_cast<std::size_t>(id)];
  b.ref = 1;
  ++num_referenced_;
  return id;
}

void KvBlockManager::commit_computed(SeqId seq, std::span<const int32_t> tokens, int num_computed) {
  if (!config_.enable_prefix_caching) return;
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return;
  SeqBlocks& s = it->second;
  const int bs = config_.block_size;
  const int full = std::min(num_computed / bs, static_cast<int>(s.table.size()));
  for (int i = s.num_committed_blocks; i < full; ++i) {
    auto toks = tokens.subspan(static_cast<std::size_t>(i * bs), static_cast<std::size_t>(bs));
    const std::uint64_t h = kv_block_hash(s.last_hash, toks);
    Block& b = blocks_[static_cast<std::size_t>(s.table[static_cast<std::size_t>(i)])];
    // If another block already holds this content (two sequences computed the same prefix
    // concurrently), keep ours private and uncached: the first one stays the canonical copy.
    if (!b.cached && cached_.find(h) == cached_.end()) {
      b.cached = true;
      b.hash = h;
      b.parent_hash = s.last_hash;
      b.tokens.assign(toks.begin(), toks.end());
      cached_.emplace(h, s.table[static_cast<std::size_t>(i)]);
    }
    s.last_hash = h;
    s.num_committed_blocks = i + 1;
  }
}

void KvBlockManager::release(int32_t id) {
  Block& b = blocks_[static_cast<std::size_t>(id)];
  if (b.ref <= 0) throw std::logic_error("KvBlockManager: double free of a block");
  if (--b.ref > 0) return;
  --num_referenced_;
  if (b.cached) {
    b.lru_pos = evictable_.insert(evictable_.end(), id);
    b.in_lru = true;
  } else {
    free_.push_back(id);
  }
}

void KvBlockManager::free(SeqId seq) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return;
  const auto& table = it->second.table;
  for (auto b = table.rbegin(); b != table.rend(); ++b) release(*b);
  seqs_.erase(it);
}

const std::vector<int32_t>& KvBlockManager::block_table(SeqId seq) const {
  auto it = seqs_.find(seq);
  return it == seqs_.end() ? kEmptyTable : it->second.table;
}

}  // namespace talkserve::llm
