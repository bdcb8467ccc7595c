#pragma once
// The paged KV cache. Keys and values live in fixed-size blocks of kBlockTokens rows:
// for every decoder layer one [n_blocks · kBlockTokens, kv_width] tensor on the device
// that runs it (its heads' share on each tensor-parallel rank), so a device's pool holds
// exactly the layers it runs. Block ids are shared by all layers: a sequence has one block
// table, valid on every stage and rank.
//
// A sequence takes blocks as it grows; nothing is reserved for its max_tokens. Blocks are
// reference counted. A full block whose content is known gets a prefix hash (a chained
// SHA-256 over every row before it, model/prefix_hash.h); when its last holder lets go
// it stays cached (least recently used first out) until the pool needs the space, so a
// later prompt with the same prefix takes it instead of recomputing it.
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "kernels/tensor.h"
#include "model/sha256.h"

namespace omni {

inline constexpr int64_t kBlockTokens = 16;
inline int64_t blocks_for(int64_t tokens) { return (tokens + kBlockTokens - 1) / kBlockTokens; }

struct KvPoolStats {
  int64_t block_tokens = kBlockTokens;
  int64_t blocks_total = 0, blocks_used = 0, blocks_cached = 0;   // cached: unused, holding a prefix
  uint64_t lookup_tokens = 0, hit_tokens = 0;                     // prompt tokens looked up / found
};

// Which blocks are free, held or cached. Thread-safe: the admission thread looks prefixes
// up while the scheduler thread allocates.
class BlockManager {
 public:
  BlockManager(int64_t n_blocks, bool prefix_cache);
  int64_t n_blocks() const { return int64_t(ref_.size()); }
  bool prefix_cache() const { return prefix_cache_; }

  // n more blocks (reference count 1), evicting cached ones, least recently used first;
  // all or nothing: false leaves `out` as it was.
  bool allocate(int64_t n, std::vector<int32_t>& out);
  // One reference less on each; a block whose count reaches 0 is free again, or cached
  // when it holds a published prefix.
  void release(const std::vector<int32_t>& blocks);
  // The longest run of `hashes` (a prompt's full blocks, in order) found cached, each
  // block taken (reference +1).
  std::vector<int32_t> match(const std::vector<Sha256>& hashes);
  // How many of `hashes` match() would find now (nothing taken).
  int64_t cached_prefix(const std::vector<Sha256>& hashes) const;
  // Adds one prompt's lookup to the counters: its tokens and those found cached.
  void count_lookup(int64_t lookup_tokens, int64_t hit_tokens);
  // `block` (held) now holds the content `hash` names; later lookups may find it. A hash
  // already held by another block is left to that one.
  void publish(int32_t block, const Sha256& hash);
  // Blocks an allocation could get now: free plus cached-and-unused.
  int64_t available() const;
  KvPoolStats stats() const;

 private:
  struct HashOf {
    size_t operator()(const Sha256& h) const noexcept;
  };
  void take(int32_t b);   // reference +1 (out of the LRU list when it was unused)

  const bool prefix_cache_;
  mutable std::mutex mu_;
  std::vector<int32_t> ref_;
  std::vector<std::optional<Sha256>> hash_;            // per block, when published
  std::unordered_map<Sha256, int32_t, HashOf> by_hash_;
  std::list<int32_t> lru_;                             // unused cached blocks, oldest first
  std::vector<std::list<int32_t>::iterator> lru_at_;   // per block, valid while in lru_
  std::vector<int32_t> free_;                          // unused blocks without a prefix
  uint64_t lookup_tokens_ = 0, hit_tokens_ = 0;
};

// The tensors behind the blocks, and their manager.
class KvPool {
 public:
  // One k and one v tensor of n_blocks · kBlockTokens rows per (layer, rank):
  // `devices[layer * ranks + rank]` holds them, `kv_width` columns each (a rank's share).
  KvPool(const std::vector<std::shared_ptr<kernels::Device>>& devices, int ranks, int64_t kv_width, int64_t n_blocks,
         bool prefix_cache);
  kernels::Tensor& k(int layer, int rank = 0) { return k_[size_t(layer * ranks_ + rank)]; }
  kernels::Tensor& v(int layer, int rank = 0) { return v_[size_t(layer * ranks_ + rank)]; }
  BlockManager& blocks() { return blocks_; }
  const BlockManager& blocks() const { return blocks_; }
  int64_t tokens() const { return blocks_.n_blocks() * kBlockTokens; }

 private:
  int ranks_;
  std::vector<kernels::Tensor> k_, v_;
  BlockManager blocks_;
};

// One sequence's view of a pool: its block table and how many tokens are in it.
// Returns its blocks when destroyed or released.
class KvSequence {
 public:
  // `max_tokens` bounds the sequence (the "context length exceeded" check); 0: the pool's size.
  explicit KvSequence(std::shared_ptr<KvPool> pool, int64_t max_tokens = 0);
  ~KvSequence();
  KvSequence(const KvSequence&) = delete;
  KvSequence& operator=(const KvSequence&) = delete;

  int64_t length() const { return length_; }      // tokens already cached
  int64_t capacity() const { return max_tokens_; }
  const std::vector<int32_t>& blocks() const { return blocks_; }
  KvPool& pool() const { return *pool_; }
  const std::shared_ptr<KvPool>& pool_ptr() const { return pool_; }

  // Blocks for `n` more tokens past length(); false (nothing taken) when the pool has too few.
  bool reserve(int64_t n);
  // Blocks it would still need for `n` more tokens.
  int64_t blocks_needed(int64_t n) const;
  void advance(int64_t n);
  // Starts an empty sequence on cached prefix blocks (already taken by BlockManager::match).
  void adopt_prefix(std::vector<int32_t> blocks);
  // Forgets cached tokens past `n` (n <= length; whole blocks past it go back).
  void truncate(int64_t n);
  // Gives every block back; the sequence is empty after.
  void release();
  // Pool row of token `i` of this sequence.
  int32_t row_of(int64_t i) const {
    return int32_t(blocks_[size_t(i / kBlockTokens)] * kBlockTokens + i % kBlockTokens);
  }

 private:
  std::shared_ptr<KvPool> pool_;
  std::vector<int32_t> blocks_;
  int64_t length_ = 0, max_tokens_ = 0;
};

}  // namespace omni
