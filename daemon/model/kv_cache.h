#pragma once
// One sequence's keys and values: for every decoder layer a [capacity, kv_width]
// buffer on the device that runs that layer. Freed with the object.
#include <memory>
#include <vector>

#include "kernels/tensor.h"

namespace omni {

class KvCache {
 public:
  KvCache(const std::vector<std::shared_ptr<kernels::Device>>& layer_devices, int64_t kv_width, int64_t capacity);

  int64_t length() const { return length_; }     // tokens already cached
  int64_t capacity() const { return capacity_; }
  kernels::Tensor& k(int layer) { return k_[layer]; }
  kernels::Tensor& v(int layer) { return v_[layer]; }
  void advance(int64_t n) { length_ += n; }
  // Forgets cached tokens past `n` (n <= length).
  void truncate(int64_t n);
  size_t bytes() const;

 private:
  std::vector<kernels::Tensor> k_, v_;
  int64_t capacity_ = 0;
  int64_t length_ = 0;
};

}  // namespace omni
