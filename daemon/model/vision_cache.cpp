#include "model/vision_cache.h"

namespace omni {

namespace {
size_t size_of(const VisionEmbeds& e) { return e.data.size() * sizeof(float); }
}  // namespace

std::shared_ptr<const VisionEmbeds> VisionCache::find(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(key);
  if (it == index_.end()) {
    ++misses_;
    return nullptr;
  }
  ++hits_;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->second;
}

void VisionCache::insert(const std::string& key, std::shared_ptr<const VisionEmbeds> value) {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t sz = size_of(*value);
  if (sz > max_bytes_) return;   // larger than the whole cache: not kept
  auto it = index_.find(key);
  if (it != index_.end()) {
    bytes_ -= size_of(*it->second->second);
    lru_.erase(it->second);
    index_.erase(it);
  }
  lru_.emplace_front(key, std::move(value));
  index_[key] = lru_.begin();
  bytes_ += sz;
  while (bytes_ > max_bytes_ && !lru_.empty()) {
    bytes_ -= size_of(*lru_.back().second);
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
}

size_t VisionCache::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_;
}

size_t VisionCache::entries() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lru_.size();
}

}  // namespace omni
