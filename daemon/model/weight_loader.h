#pragma once
// Moves tensors from the checkpoint's memory map onto the device that owns them, checking
// shapes against the config and reporting progress (bytes done of bytes planned) while a
// large model loads. Weight matrices (linear layers' weights, embedding tables: the
// load_matrix calls) are kept in the device's weight dtype (Device::weight_dtype: a cpu
// device's --cpu-weights), every other tensor in its compute dtype. A tensor already in the
// dtype wanted, whole rows of it, is used where it lies in the map when the device can
// (cpu devices: no copy, nothing read until used); otherwise it is converted a slice at a
// time (no float32 copy of a whole tensor) and its file pages are handed back.
#include <functional>
#include <unordered_map>
#include <unordered_set>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "kernels/tensor.h"

namespace omni {

struct LoadProgress {
  size_t done_bytes = 0;
  size_t total_bytes = 0;
  size_t done_tensors = 0;
  size_t total_tensors = 0;
};
using ProgressFn = std::function<void(const LoadProgress&)>;

class WeightLoader {
 public:
  WeightLoader(const Checkpoint& ckpt, ProgressFn progress = {});

  // Announces a tensor that load() will fetch, so progress has a total. Optional.
  void plan(const std::string& name);
  // Loads `name`, which must have `shape`, onto `dev`.
  kernels::Tensor load(const std::string& name, const std::vector<int64_t>& shape,
                       const std::shared_ptr<kernels::Device>& dev);
  // Rows [first, first+count) of a 2-D tensor, or of a 1-D tensor (for tensor-parallel shards).
  kernels::Tensor load_rows(const std::string& name, const std::vector<int64_t>& shape, int64_t first,
                            int64_t count, const std::shared_ptr<kernels::Device>& dev);
  // Columns [first, first+count) of a 2-D tensor.
  kernels::Tensor load_cols(const std::string& name, const std::vector<int64_t>& shape, int64_t first,
                            int64_t count, const std::shared_ptr<kernels::Device>& dev);
  // The same three for weight matrices.
  kernels::Tensor load_matrix(const std::string& name, const std::vector<int64_t>& shape,
                              const std::shared_ptr<kernels::Device>& dev);
  kernels::Tensor load_matrix_rows(const std::string& name, const std::vector<int64_t>& shape, int64_t first,
                                   int64_t count, const std::shared_ptr<kernels::Device>& dev);
  kernels::Tensor load_matrix_cols(const std::string& name, const std::vector<int64_t>& shape, int64_t first,
                                   int64_t count, const std::shared_ptr<kernels::Device>& dev);
  // The dtype the checkpoint stores `name` in (for a matrix rebuilt before upload).
  kernels::DType released_dtype(const std::string& name) const { return ckpt_.get(name).dtype; }

 private:
  // Counts each checkpoint tensor once and its bytes at most once, however many devices
  // load it or parts of it (tensor parallelism shards some and replicates others).
  void report(const std::string& name, size_t bytes);
  kernels::Tensor rows(const std::string& name, const std::vector<int64_t>& shape, int64_t first, int64_t count,
                       const std::shared_ptr<kernels::Device>& dev, bool matrix);
  kernels::Tensor cols(const std::string& name, const std::vector<int64_t>& shape, int64_t first, int64_t count,
                       const std::shared_ptr<kernels::Device>& dev, bool matrix);
  const Checkpoint& ckpt_;
  ProgressFn progress_;
  LoadProgress state_;
  std::unordered_set<std::string> planned_;
  std::unordered_map<std::string, size_t> done_;   // bytes counted per tensor
};

// A ProgressFn that logs a line every 10 % (and at the end).
ProgressFn log_progress(const std::string& what);

}  // namespace omni
