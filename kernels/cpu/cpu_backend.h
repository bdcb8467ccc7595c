#pragma once
// The CPU backend (kernels/backend.h): cpu:N devices in host memory, built into
// libomni_kernels.
#include "kernels/backend.h"

namespace omni::kernels {

const Backend& cpu_backend();

}  // namespace omni::kernels
