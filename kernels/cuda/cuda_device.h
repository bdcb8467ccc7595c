#pragma once
// The CUDA device: one GPU, one stream, a stream-ordered allocator under a
// memory cap, pinned staging for uploads, and CudaOps (bf16 storage, fp32 accumulation).
// This header stays free of CUDA headers: plain C++ (tests, benchmarks) includes it.
#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>

#include "kernels/device.h"

namespace omni::kernels {

class CudaOps;

class CudaDevice final : public Device {
 public:
  // memory_cap 0: the memory free on the GPU when the device is created.
  CudaDevice(int index, size_t memory_cap);
  ~CudaDevice() override;
  CudaDevice(const CudaDevice&) = delete;
  CudaDevice& operator=(const CudaDevice&) = delete;

  DeviceId id() const override { return {DeviceId::Kind::CUDA, index_}; }
  size_t total_memory() const override { return budget_; }
  size_t free_memory() const override;
  void* alloc(size_t bytes) override;
  void release(void* p, size_t bytes) override;
  void upload(void* dst, const void* host_src, size_t bytes) override;
  void download(void* host_dst, const void* src, size_t bytes) override;
  DType compute_dtype() const override;
  Ops& ops() override;
  void synchronize() override;

  int index() const { return index_; }
  // The device's stream as a cudaStream_t (opaque here), and making this GPU current.
  void* stream() const { return stream_; }
  void make_current() const;
  int sm_count() const { return sm_count_; }

 private:
  int index_;
  size_t budget_ = 0;
  std::atomic<size_t> used_{0};
  void* stream_ = nullptr;       // cudaStream_t
  void* pool_ = nullptr;         // cudaMemPool_t
  int sm_count_ = 0;
  // Two pinned staging buffers, each guarded by an event (double-buffered uploads).
  std::mutex staging_mu_;
  void* staging_[2] = {nullptr, nullptr};
  void* staging_done_[2] = {nullptr, nullptr};   // cudaEvent_t
  std::unique_ptr<CudaOps> ops_;
};

// GPUs the CUDA runtime sees (0 without a driver or GPU).
int cuda_device_count();

// Copies `bytes` from `src` on `src_dev` to `dst` on `dst_dev` (both CUDA devices) with
// cudaMemcpyPeerAsync; returns when the copy has landed.
void cuda_peer_copy(Device& src_dev, const void* src, Device& dst_dev, void* dst, size_t bytes);

}  // namespace omni::kernels
