#include "kernels/cpu/cpu_backend.h"

#include "kernels/cpu/cpu_device.h"

namespace omni::kernels {

namespace {

class CpuBackend final : public Backend {
 public:
  DeviceId::Kind kind() const override { return DeviceId::Kind::CPU; }
  // cpu:N devices are budgets over the one host memory: any index names one.
  int device_count() const override { return 1; }
  std::shared_ptr<Device> make_device(int index, size_t memory_cap) const override {
    return make_cpu_device(index, memory_cap, CpuWeights::F32);
  }
  // Host to host: the caller's bounce through host memory is the copy.
  bool copy_between_devices(const Tensor&, Tensor&) const override { return false; }
};

}  // namespace

std::shared_ptr<Device> make_cpu_device(int index, size_t memory_cap, CpuWeights weights) {
  return std::make_shared<CpuDevice>(index, memory_cap ? memory_cap : host_available_memory(), weights);
}

const Backend& cpu_backend() {
  static const CpuBackend backend;
  return backend;
}

}  // namespace omni::kernels
