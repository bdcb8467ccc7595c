#pragma once
// Backends: which device kinds this process can use. The CPU backend is built into
// libomni_kernels; the CUDA backend is its own shared library, loaded on first use when
// the NVIDIA driver is present (kernels/backend_registry.cpp), so a CPU-only box never
// maps cudart, cuBLAS or NCCL.
#include <string>
#include <vector>

namespace omni::kernels {

struct BackendStatus {
  std::string name;       // "cpu", "cuda", "nccl"
  bool available = false; // usable in this process
  std::string detail;     // what was found ("2 devices", "libomni_backend_cuda.so: ...") or why not
};

// Every backend this build knows, with what was found at run time (loads the optional ones).
std::vector<BackendStatus> backend_statuses();

}  // namespace omni::kernels
