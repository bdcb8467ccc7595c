#pragma once
// One sequence's keys and values: for every decoder layer a [capacity, kv_width]
// buffer on the device that runs that layer. Freed with the object. Under tensor
// parallelism every rank holds its own heads' share of each layer (k(layer, rank)).
#include <memory>
#include <vector>

#include "kernels/tensor.h"

namespace omni {

class KvCache {
 public:
  KvCache(const std::vector<std::shared_ptr<kernels::Device>>& layer_devices, int64_t kv_width, int64_t capacity);

  // Tensor parallel: per layer, one [capacity, kv_width_per_rank] shard on each rank's device.
  static std::unique_ptr<KvCache> sharded(const std::vector<std::shared_ptr<kernels::Device>>& rank_devices,
                                          int n_layers, int64_t kv_width_per_rank, int64_t capacity);

  int64_t length() const { return length_; }     // tokens already cached
  int64_t capacity() const { return capacity_; }
  kernels::Tensor& k(int layer, int rank = 0) { return k_[size_t(layer * ranks_ + rank)]; }
  kernels::Tensor& v(int layer, int rank = 0) { return v_[size_t(layer * ranks_ + rank)]; }
  void advance(int64_t n) { length_ += n; }
  // Forgets cached tokens past `n` (n <= length).
  void truncate(int64_t n);
  size_t bytes() const;

 private:
  std::vector<kernels::Tensor> k_, v_;
  KvCache() = default;
  int ranks_ = 1;
  int64_t capacity_ = 0;
  int64_t length_ = 0;
};

}  // namespace omni
