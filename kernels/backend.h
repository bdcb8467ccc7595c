#pragma once
// Backends: the device kinds this process can use, chosen in one place
// (kernels/backend_registry.cpp). The CPU backend is built into libomni_kernels. The CUDA
// backend is a shared library of its own (libomni_backend_cuda.so, next to
// libomni_kernels.so) loaded on first use, and only when the NVIDIA driver is there, so
// one package serves CPU-only and GPU machines and a CPU-only box never maps cudart or
// cuBLAS. NCCL is a third library (libomni_backend_nccl.so): a GPU box without NCCL still
// gets its GPUs, and tensor-parallel sums go through host memory.
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "device.h"

namespace omni::kernels {

class Communicator;
class Tensor;

// What a backend library implements. Backends are built from this tree only: the ABI
// number guards against a stale library next to a newer libomni_kernels.
inline constexpr int kBackendAbi = 1;

class Backend {
 public:
  virtual ~Backend() = default;
  virtual DeviceId::Kind kind() const = 0;
  virtual int device_count() const = 0;
  // memory_cap 0: what the device has. Throws naming the device when it cannot be made.
  virtual std::shared_ptr<Device> make_device(int index, size_t memory_cap) const = 0;
  // A copy between two of this backend's devices done without the host (peer copy);
  // false when the backend has no such path (the caller bounces through the host).
  virtual bool copy_between_devices(const Tensor& src, Tensor& dst) const = 0;
};

// The entry points the backend libraries export (extern "C", looked up with dlsym).
using BackendEntry = const Backend* (*)(int abi);
using CommunicatorEntry = std::shared_ptr<Communicator> (*)(int abi, const std::vector<std::shared_ptr<Device>>& devs);
inline constexpr const char* kCudaBackendEntry = "omni_backend_cuda_v1";
inline constexpr const char* kNcclCommunicatorEntry = "omni_communicator_nccl_v1";

// The backend for `kind`, loading it on first use; nullptr when it is not available here
// (backend_statuses says why).
const Backend* backend_for(DeviceId::Kind kind);

struct BackendStatus {
  std::string name;        // "cpu", "cuda", "nccl"
  bool available = false;  // usable in this process
  std::string detail;      // what was found ("2 devices", the library) or why not
};

// Every backend this build knows, with what was found at run time (loads the optional ones).
std::vector<BackendStatus> backend_statuses();

}  // namespace omni::kernels
