#pragma once
// The CPU backend (kernels/backend.h): cpu:N devices in host memory, built into
// libomni_kernels.
#include "kernels/backend.h"

namespace omni::kernels {

const Backend& cpu_backend();
// A cpu device keeping weight matrices as `weights` says (Backend::make_device gives f32).
std::shared_ptr<Device> make_cpu_device(int index, size_t memory_cap, CpuWeights weights);

}  // namespace omni::kernels
