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
