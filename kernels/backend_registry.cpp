#include "kernels/backend.h"

#include "kernels/device.h"

namespace omni::kernels {

std::vector<BackendStatus> backend_statuses() {
  std::vector<BackendStatus> out;
  out.push_back({"cpu", true, "built in"});
#if defined(OMNI_HAVE_CUDA)
  const int n = cuda_device_count();
  out.push_back({"cuda", n > 0, std::to_string(n) + " device" + (n == 1 ? "" : "s")});
#endif
  return out;
}

}  // namespace omni::kernels
