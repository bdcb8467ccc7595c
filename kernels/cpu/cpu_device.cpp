#include "kernels/cpu/cpu_device.h"

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

namespace omni::kernels {

CpuDevice::CpuDevice(int index, size_t budget_bytes, CpuWeights weights)
    : index_(index), budget_(budget_bytes), weights_(weights) {}

DType CpuDevice::weight_dtype(DType released) const { return cpu_weight_dtype(weights_, released); }

bool CpuDevice::adopt_host(size_t bytes) {
  const size_t prev = used_.fetch_add(bytes);
  if (prev + bytes <= budget_) return true;
  used_.fetch_sub(bytes);
  return false;
}

size_t CpuDevice::free_memory() const {
  size_t used = used_.load();
  return used >= budget_ ? 0 : budget_ - used;
}

void* CpuDevice::alloc(size_t bytes) {
  size_t prev = used_.fetch_add(bytes);
  if (prev + bytes > budget_) {
    used_.fetch_sub(bytes);
    throw std::runtime_error("out of memory on " + id().str() + ": " + std::to_string(bytes) +
                             " bytes requested, " + std::to_string(budget_ - std::min(prev, budget_)) +
                             " of " + std::to_string(budget_) + " free");
  }
  // 64-byte alignment for SIMD loads; aligned_alloc wants a multiple of the alignment.
  // Large tensors (8 MiB and up: embedding tables, lm_head, big matrices) are 2 MiB aligned
  // and asked for as huge pages: a decode step streams every weight once, and with 4 KiB
  // pages their page walks cost a tenth of int8 decode's speed (where transparent huge
  // pages are in madvise mode, docs/PERFORMANCE.md "CPU weights"). Smaller ones are left
  // alone: a partly used huge page would add resident memory.
  constexpr size_t kHuge = size_t(2) << 20;
  const bool huge = bytes >= 4 * kHuge;
  // Only whole huge pages are advised: the tail stays in small pages, so nothing resident is
  // added beyond what is used.
  void* p = std::aligned_alloc(huge ? kHuge : 64, (bytes + 63) / 64 * 64);
  if (p && huge) ::madvise(p, bytes / kHuge * kHuge, MADV_HUGEPAGE);   // advice: failure is harmless
  if (!p) {
    used_.fetch_sub(bytes);
    throw std::runtime_error("host allocation of " + std::to_string(bytes) + " bytes failed on " +
                             id().str());
  }
  return p;
}

void CpuDevice::release(void* p, size_t bytes) {
  std::free(p);
  used_.fetch_sub(bytes);
}

void CpuDevice::upload(void* dst, const void* host_src, size_t bytes) { std::memcpy(dst, host_src, bytes); }
void CpuDevice::download(void* host_dst, const void* src, size_t bytes) { std::memcpy(host_dst, src, bytes); }

}  // namespace omni::kernels
