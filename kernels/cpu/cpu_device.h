#pragma once
// A CPU device: host memory under a budget of its own, so that several cpu:N devices
// can stand in for GPUs (planner, pipeline and tensor-parallel tests run in CI).
#include <atomic>
#include <memory>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/device.h"

namespace omni::kernels {

class CpuDevice final : public Device {
 public:
  CpuDevice(int index, size_t budget_bytes, CpuWeights weights = CpuWeights::F32);
  DeviceId id() const override { return {DeviceId::Kind::CPU, index_}; }
  size_t total_memory() const override { return budget_; }
  size_t free_memory() const override;
  void* alloc(size_t bytes) override;
  void release(void* p, size_t bytes) override;
  void upload(void* dst, const void* host_src, size_t bytes) override;
  void download(void* host_dst, const void* src, size_t bytes) override;
  DType compute_dtype() const override { return DType::F32; }
  DType weight_dtype(DType released) const override;
  bool adopt_host(size_t bytes) override;
  void unadopt_host(size_t bytes) override { used_.fetch_sub(bytes); }
  CpuWeights weights() const { return weights_; }
  Ops& ops() override { return ops_; }

 private:
  int index_;
  size_t budget_;
  CpuWeights weights_;
  std::atomic<size_t> used_{0};   // allocations and adopted host memory
  CpuOps ops_;
};

}  // namespace omni::kernels
