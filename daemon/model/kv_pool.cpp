#include "model/kv_pool.h"

#include <cstring>

#include "util/error.h"

namespace omni {

size_t BlockManager::HashOf::operator()(const Sha256& h) const noexcept {
  size_t v = 0;
  std::memcpy(&v, h.data(), sizeof v);   // already uniformly distributed
  return v;
}

BlockManager::BlockManager(int64_t n_blocks, bool prefix_cache) : prefix_cache_(prefix_cache) {
  if (n_blocks < 1 || n_blocks > INT32_MAX) throw Error("KV pool of " + std::to_string(n_blocks) + " blocks");
  ref_.assign(size_t(n_blocks), 0);
  hash_.resize(size_t(n_blocks));
  lru_at_.resize(size_t(n_blocks));
  free_.reserve(size_t(n_blocks));
  for (int64_t b = n_blocks - 1; b >= 0; --b) free_.push_back(int32_t(b));   // block 0 handed out first
}

bool BlockManager::allocate(int64_t n, std::vector<int32_t>& out) {
  std::lock_guard<std::mutex> lock(mu_);
  if (n < 0 || n > int64_t(free_.size() + lru_.size())) return false;
  for (int64_t i = 0; i < n; ++i) {
    int32_t b;
    if (!free_.empty()) {
      b = free_.back();
      free_.pop_back();
    } else {   // evict the least recently used cached prefix
      b = lru_.front();
      lru_.pop_front();
      by_hash_.erase(*hash_[size_t(b)]);
      hash_[size_t(b)].reset();
    }
    ref_[size_t(b)] = 1;
    out.push_back(b);
  }
  return true;
}

void BlockManager::release(const std::vector<int32_t>& blocks) {
  std::lock_guard<std::mutex> lock(mu_);
  // Released in reverse, so a sequence's later blocks are evicted before its earlier ones
  // (a later block is useless without the ones before it).
  for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) {
    const int32_t b = *it;
    if (b < 0 || b >= int32_t(ref_.size()) || ref_[size_t(b)] <= 0)
      throw Error("KV pool: release of block " + std::to_string(b) + " that is not held");
    if (--ref_[size_t(b)] > 0) continue;
    if (hash_[size_t(b)]) lru_at_[size_t(b)] = lru_.insert(lru_.end(), b);
    else free_.push_back(b);
  }
}

void BlockManager::take(int32_t b) {
  if (ref_[size_t(b)]++ == 0) lru_.erase(lru_at_[size_t(b)]);
}

std::vector<int32_t> BlockManager::match(const std::vector<Sha256>& hashes) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<int32_t> out;
  if (!prefix_cache_) return out;
  for (const Sha256& h : hashes) {
    auto it = by_hash_.find(h);
    if (it == by_hash_.end()) break;
    take(it->second);
    out.push_back(it->second);
  }
  return out;
}

int64_t BlockManager::cached_prefix(const std::vector<Sha256>& hashes) const {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t n = 0;
  if (!prefix_cache_) return n;
  for (const Sha256& h : hashes) {
    if (!by_hash_.count(h)) break;
    ++n;
  }
  return n;
}

void BlockManager::count_lookup(int64_t lookup_tokens, int64_t hit_tokens) {
  std::lock_guard<std::mutex> lock(mu_);
  lookup_tokens_ += uint64_t(std::max<int64_t>(lookup_tokens, 0));
  hit_tokens_ += uint64_t(std::max<int64_t>(hit_tokens, 0));
}

void BlockManager::publish(int32_t b, const Sha256& h) {
  if (!prefix_cache_) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (b < 0 || b >= int32_t(ref_.size()) || ref_[size_t(b)] <= 0)
    throw Error("KV pool: publish of block " + std::to_string(b) + " that is not held");
  if (hash_[size_t(b)] || by_hash_.count(h)) return;
  hash_[size_t(b)] = h;
  by_hash_.emplace(h, b);
}

int64_t BlockManager::available() const {
  std::lock_guard<std::mutex> lock(mu_);
  return int64_t(free_.size() + lru_.size());
}

KvPoolStats BlockManager::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  KvPoolStats s;
  s.blocks_total = int64_t(ref_.size());
  s.blocks_cached = int64_t(lru_.size());
  s.blocks_used = s.blocks_total - s.blocks_cached - int64_t(free_.size());
  s.lookup_tokens = lookup_tokens_;
  s.hit_tokens = hit_tokens_;
  return s;
}

KvPool::KvPool(const std::vector<std::shared_ptr<kernels::Device>>& devices, int ranks, int64_t kv_width,
               int64_t n_blocks, bool prefix_cache)
    : ranks_(ranks), blocks_(n_blocks, prefix_cache) {
  const int64_t rows = n_blocks * kBlockTokens;
  for (const auto& dev : devices) {
    k_.push_back(kernels::Tensor::empty(dev, dev->compute_dtype(), {rows, kv_width}));
    v_.push_back(kernels::Tensor::empty(dev, dev->compute_dtype(), {rows, kv_width}));
  }
}

KvSequence::KvSequence(std::shared_ptr<KvPool> pool, int64_t max_tokens) : pool_(std::move(pool)) {
  if (!pool_) throw Error("KV sequence without a pool");
  max_tokens_ = max_tokens > 0 ? std::min(max_tokens, pool_->tokens()) : pool_->tokens();
}

KvSequence::~KvSequence() { release(); }

int64_t KvSequence::blocks_needed(int64_t n) const {
  return std::max<int64_t>(0, blocks_for(length_ + n) - int64_t(blocks_.size()));
}

bool KvSequence::reserve(int64_t n) {
  if (length_ + n > max_tokens_)
    throw Error("context length exceeded: " + std::to_string(length_ + n) + " tokens, cache holds " +
                std::to_string(max_tokens_));
  const int64_t need = blocks_needed(n);
  return need == 0 || pool_->blocks().allocate(need, blocks_);
}

void KvSequence::advance(int64_t n) {
  if (n < 0 || length_ + n > int64_t(blocks_.size()) * kBlockTokens)
    throw Error("KV sequence: advance by " + std::to_string(n) + " past its " + std::to_string(blocks_.size()) +
                " blocks");
  length_ += n;
}

void KvSequence::adopt_prefix(std::vector<int32_t> blocks) {
  if (!blocks_.empty()) throw Error("KV sequence: a prefix is adopted only by an empty sequence");
  blocks_ = std::move(blocks);
  length_ = int64_t(blocks_.size()) * kBlockTokens;
}

void KvSequence::truncate(int64_t n) {
  if (n < 0 || n > length_) throw Error("KV cache truncate to " + std::to_string(n) + " of " + std::to_string(length_));
  length_ = n;
  const size_t keep = size_t(blocks_for(n));
  if (keep < blocks_.size()) {
    std::vector<int32_t> tail(blocks_.begin() + std::ptrdiff_t(keep), blocks_.end());
    blocks_.resize(keep);
    pool_->blocks().release(tail);
  }
}

void KvSequence::release() {
  if (!blocks_.empty()) pool_->blocks().release(blocks_);
  blocks_.clear();
  length_ = 0;
}

}  // namespace omni
