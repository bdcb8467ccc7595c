// The one place that knows which backends exist and how each is found (kernels/backend.h).
#include "kernels/backend.h"

#include <dlfcn.h>

#include <mutex>
#include <stdexcept>
#include <string>

#include "kernels/comm.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/cpu_comm.h"

namespace omni::kernels {

namespace {

// The folder libomni_kernels.so was loaded from: the backend libraries are installed
// beside it (the build tree's lib/, or the package's private library folder).
std::string own_folder() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<const void*>(&backend_for), &info) == 0 || !info.dli_fname) return {};
  const std::string path = info.dli_fname;
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash + 1);
}

// An optional library and the entry point it exports; loaded once.
struct Loaded {
  void* entry = nullptr;
  std::string detail;   // the library's path when loaded, else why not
};

Loaded load_library(const char* file, const char* symbol) {
  Loaded out;
  const std::string path = own_folder() + file;
  // RTLD_LOCAL: the libraries CUDA brings stay out of the global symbol namespace.
  void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* why = ::dlerror();
    out.detail = why ? why : path + ": not loadable";
    return out;
  }
  out.entry = ::dlsym(h, symbol);
  if (!out.entry) {
    out.detail = path + ": no entry point " + symbol;
    return out;   // the handle stays open: unloading CUDA libraries is not safe
  }
  out.detail = path;
  return out;
}

struct CudaState {
  const Backend* backend = nullptr;
  std::string detail;
};

const CudaState& cuda_state() {
  static const CudaState state = [] {
    CudaState s;
    // No driver, no GPU: the CUDA runtime and its libraries are never mapped. Opening
    // libcuda.so.1 (the driver's own library) is the cheap test the runtime would make.
    void* driver = ::dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
    if (!driver) {
      s.detail = "no NVIDIA driver (libcuda.so.1 not found)";
      return s;
    }
    const Loaded lib = load_library("libomni_backend_cuda.so", kCudaBackendEntry);
    if (!lib.entry) {
      s.detail = lib.detail;
      return s;
    }
    const Backend* b = reinterpret_cast<BackendEntry>(lib.entry)(kBackendAbi);
    if (!b) {
      s.detail = lib.detail + ": built for another version of libomni_kernels";
      return s;
    }
    s.backend = b;
    s.detail = lib.detail;
    return s;
  }();
  return state;
}

const Loaded& nccl_library() {
  static const Loaded lib = load_library("libomni_backend_nccl.so", kNcclCommunicatorEntry);
  return lib;
}

std::string plural(int n, const char* what) { return std::to_string(n) + " " + what + (n == 1 ? "" : "s"); }

}  // namespace

const Backend* backend_for(DeviceId::Kind kind) {
  if (kind == DeviceId::Kind::CPU) return &cpu_backend();
  return cuda_state().backend;
}

int device_count(DeviceId::Kind kind) {
  const Backend* b = backend_for(kind);
  return b ? b->device_count() : 0;
}

std::shared_ptr<Device> make_device(const DeviceId& id, size_t memory_cap, CpuWeights cpu_weights) {
  if (id.kind == DeviceId::Kind::CPU) return make_cpu_device(id.index, memory_cap, cpu_weights);
  const Backend* b = backend_for(id.kind);
  if (!b) throw std::runtime_error("device " + id.str() + " requested, but the CUDA backend is not available: " +
                                   cuda_state().detail);
  return b->make_device(id.index, memory_cap);
}

std::string backend_detail(DeviceId::Kind kind) {
  return kind == DeviceId::Kind::CPU ? "built in" : cuda_state().detail;
}

std::shared_ptr<Communicator> make_communicator(const std::vector<std::shared_ptr<Device>>& devs) {
  bool all_cuda = !devs.empty();
  for (const auto& d : devs) all_cuda = all_cuda && d->id().kind == DeviceId::Kind::CUDA;
  if (all_cuda && devs.size() > 1 && nccl_library().entry) {
    auto comm = reinterpret_cast<CommunicatorEntry>(nccl_library().entry)(kBackendAbi, devs);
    if (comm) return comm;
  }
  // cpu devices, mixed devices, or CUDA without NCCL: correct through host memory, slow.
  return std::make_shared<CpuCommunicator>(devs);
}

std::vector<BackendStatus> backend_statuses() {
  std::vector<BackendStatus> out;
  out.push_back({"cpu", true, "built in"});
  const CudaState& cuda = cuda_state();
  if (!cuda.backend) {
    out.push_back({"cuda", false, cuda.detail});
    return out;
  }
  const int n = cuda.backend->device_count();
  out.push_back({"cuda", n > 0, plural(n, "device") + " (" + cuda.detail + ")"});
  const Loaded& nccl = nccl_library();
  out.push_back({"nccl", nccl.entry != nullptr, nccl.detail});
  return out;
}

}  // namespace omni::kernels
