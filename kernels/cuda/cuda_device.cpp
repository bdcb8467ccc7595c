#include "kernels/cuda/cuda_device.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"

namespace omni::kernels {

namespace {
constexpr size_t kStagingBytes = size_t(16) << 20;   // per buffer; uploads go through two
cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }
}  // namespace

int cuda_device_count() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();   // no driver / no GPU: not an error for the caller
    return 0;
  }
  return n;
}

CudaDevice::CudaDevice(int index, size_t memory_cap) : index_(index) {
  const int count = cuda_device_count();
  if (index < 0 || index >= count)
    throw std::runtime_error("device cuda:" + std::to_string(index) + " requested, but " + std::to_string(count) +
                             " CUDA device(s) are visible");
  make_current();
  cudaDeviceProp prop{};
  OMNI_CUDA_CHECK(cudaGetDeviceProperties(&prop, index_));
  sm_count_ = prop.multiProcessorCount;
  size_t free_b = 0, total_b = 0;
  OMNI_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  budget_ = memory_cap ? memory_cap : free_b;

  cudaStream_t s = nullptr;
  OMNI_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  stream_ = s;
  // A private stream-ordered pool that keeps freed memory cached: the model allocates
  // activations per op, and cudaMalloc/cudaFree per op would serialise the GPU.
  cudaMemPoolProps props{};
  props.allocType = cudaMemAllocationTypePinned;
  props.location.type = cudaMemLocationTypeDevice;
  props.location.id = index_;
  cudaMemPool_t pool = nullptr;
  OMNI_CUDA_CHECK(cudaMemPoolCreate(&pool, &props));
  uint64_t keep = UINT64_MAX;
  OMNI_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
  pool_ = pool;
  for (int i = 0; i < 2; ++i) {
    OMNI_CUDA_CHECK(cudaMallocHost(&staging_[i], kStagingBytes));
    cudaEvent_t ev = nullptr;
    OMNI_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    staging_done_[i] = ev;
  }
  ops_ = std::make_unique<CudaOps>(*this);
}

CudaDevice::~CudaDevice() {
  cudaSetDevice(index_);
  if (stream_) cudaStreamSynchronize(as_stream(stream_));
  ops_.reset();
  for (int i = 0; i < 2; ++i) {
    if (staging_done_[i]) cudaEventDestroy(static_cast<cudaEvent_t>(staging_done_[i]));
    if (staging_[i]) cudaFreeHost(staging_[i]);
  }
  if (pool_) cudaMemPoolDestroy(static_cast<cudaMemPool_t>(pool_));
  if (stream_) cudaStreamDestroy(as_stream(stream_));
}

void CudaDevice::make_current() const { OMNI_CUDA_CHECK(cudaSetDevice(index_)); }

DType CudaDevice::compute_dtype() const { return DType::BF16; }

Ops& CudaDevice::ops() { return *ops_; }

size_t CudaDevice::free_memory() const {
  const size_t used = used_.load();
  size_t budget_free = used >= budget_ ? 0 : budget_ - used;
  // The GPU may hold less than the budget says (other processes): report the smaller.
  make_current();
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) return budget_free;
  uint64_t reserved = 0, in_use = 0;
  auto pool = static_cast<cudaMemPool_t>(pool_);
  cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &reserved);
  cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &in_use);
  const size_t cached = reserved > in_use ? size_t(reserved - in_use) : 0;
  return std::min(budget_free, free_b + cached);
}

void* CudaDevice::alloc(size_t bytes) {
  const size_t prev = used_.fetch_add(bytes);
  if (prev + bytes > budget_) {
    used_.fetch_sub(bytes);
    throw std::runtime_error("out of memory on " + id().str() + ": " + std::to_string(bytes) + " bytes requested, " +
                             std::to_string(budget_ - std::min(prev, budget_)) + " of " + std::to_string(budget_) +
                             " free");
  }
  make_current();
  void* p = nullptr;
  const cudaError_t e =
      cudaMallocFromPoolAsync(&p, std::max<size_t>(bytes, 1), static_cast<cudaMemPool_t>(pool_), as_stream(stream_));
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    used_.fetch_sub(bytes);
    throw std::runtime_error("GPU allocation of " + std::to_string(bytes) + " bytes failed on " + id().str() + ": " +
                             cudaGetErrorString(e));
  }
  return p;
}

void CudaDevice::release(void* p, size_t bytes) {
  if (!p) return;
  cudaSetDevice(index_);
  // Stream-ordered: the memory returns to the pool once queued work on it has run.
  // Never throws (called from destructors).
  if (cudaFreeAsync(p, as_stream(stream_)) != cudaSuccess) (void)cudaGetLastError();
  used_.fetch_sub(bytes);
}

void CudaDevice::upload(void* dst, const void* host_src, size_t bytes) {
  if (bytes == 0) return;
  make_current();
  std::lock_guard<std::mutex> lock(staging_mu_);
  const auto* src = static_cast<const char*>(host_src);
  auto* d = static_cast<char*>(dst);
  int b = 0;
  for (size_t off = 0; off < bytes; off += kStagingBytes, b ^= 1) {
    const size_t n = std::min(kStagingBytes, bytes - off);
    auto ev = static_cast<cudaEvent_t>(staging_done_[b]);
    OMNI_CUDA_CHECK(cudaEventSynchronize(ev));   // the buffer's previous copy has left it
    std::memcpy(staging_[b], src + off, n);
    OMNI_CUDA_CHECK(cudaMemcpyAsync(d + off, staging_[b], n, cudaMemcpyHostToDevice, as_stream(stream_)));
    OMNI_CUDA_CHECK(cudaEventRecord(ev, as_stream(stream_)));
  }
  OMNI_CUDA_CHECK(cudaStreamSynchronize(as_stream(stream_)));
}

void CudaDevice::download(void* host_dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  make_current();
  OMNI_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, as_stream(stream_)));
  OMNI_CUDA_CHECK(cudaStreamSynchronize(as_stream(stream_)));
}

void CudaDevice::synchronize() {
  make_current();
  OMNI_CUDA_CHECK(cudaStreamSynchronize(as_stream(stream_)));
}

void cuda_peer_copy(Device& src_dev, const void* src, Device& dst_dev, void* dst, size_t bytes) {
  auto* s = dynamic_cast<CudaDevice*>(&src_dev);
  auto* d = dynamic_cast<CudaDevice*>(&dst_dev);
  if (!s || !d) throw std::invalid_argument("cuda_peer_copy between " + src_dev.id().str() + " and " + dst_dev.id().str());
  if (bytes == 0) return;
  s->synchronize();   // src was written on its own stream
  d->make_current();
  cudaError_t e = cudaMemcpyPeerAsync(dst, d->index(), src, s->index(), bytes, as_stream(d->stream()));
  if (e == cudaSuccess) e = cudaStreamSynchronize(as_stream(d->stream()));   // src may be released after we return
  if (e == cudaSuccess) return;
  // Pool allocations of one GPU need not be reachable from another: bounce through the host.
  (void)cudaGetLastError();
  std::vector<char> tmp(bytes);
  s->download(tmp.data(), src, bytes);
  d->upload(dst, tmp.data(), bytes);
}

}  // namespace omni::kernels
