#include "model/kv_cache.h"

#include "util/error.h"

namespace omni {

KvCache::KvCache(const std::vector<std::shared_ptr<kernels::Device>>& layer_devices, int64_t kv_width,
                 int64_t capacity)
    : capacity_(capacity) {
  for (const auto& dev : layer_devices) {
    k_.push_back(kernels::Tensor::empty(dev, dev->compute_dtype(), {capacity, kv_width}));
    v_.push_back(kernels::Tensor::empty(dev, dev->compute_dtype(), {capacity, kv_width}));
  }
}

std::unique_ptr<KvCache> KvCache::sharded(const std::vector<std::shared_ptr<kernels::Device>>& rank_devices,
                                          int n_layers, int64_t kv_width_per_rank, int64_t capacity) {
  std::unique_ptr<KvCache> c(new KvCache());
  c->ranks_ = int(rank_devices.size());
  c->capacity_ = capacity;
  for (int l = 0; l < n_layers; ++l)
    for (const auto& dev : rank_devices) {
      c->k_.push_back(kernels::Tensor::empty(dev, dev->compute_dtype(), {capacity, kv_width_per_rank}));
      c->v_.push_back(kernels::Tensor::empty(dev, dev->compute_dtype(), {capacity, kv_width_per_rank}));
    }
  return c;
}

void KvCache::truncate(int64_t n) {
  if (n < 0 || n > length_) throw Error("KV cache truncate to " + std::to_string(n) + " of " + std::to_string(length_));
  length_ = n;
}

size_t KvCache::bytes() const {
  size_t b = 0;
  for (size_t i = 0; i < k_.size(); ++i) b += k_[i].nbytes() + v_[i].nbytes();
  return b;
}

}  // namespace omni
