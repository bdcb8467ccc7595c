// The CUDA backend's face to kernels/backend_registry.cpp: the one symbol it looks up in
// libomni_backend_cuda.so.
#include "kernels/backend.h"
#include "kernels/cuda/cuda_device.h"
#include "kernels/tensor.h"

namespace omni::kernels {

namespace {

class CudaBackend final : public Backend {
 public:
  DeviceId::Kind kind() const override { return DeviceId::Kind::CUDA; }
  int device_count() const override { return cuda_device_count(); }
  std::shared_ptr<Device> make_device(int index, size_t memory_cap) const override {
    return std::make_shared<CudaDevice>(index, memory_cap);
  }
  // GPU to GPU: a peer copy (through the host only where peer access is off).
  bool copy_between_devices(const Tensor& src, Tensor& dst) const override {
    cuda_peer_copy(src.device(), src.raw(), dst.device(), dst.raw(), src.nbytes());
    return true;
  }
};

}  // namespace

}  // namespace omni::kernels

extern "C" __attribute__((visibility("default"))) const omni::kernels::Backend* omni_backend_cuda_v1(int abi) {
  static const omni::kernels::CudaBackend backend;
  return abi == omni::kernels::kBackendAbi ? &backend : nullptr;
}
