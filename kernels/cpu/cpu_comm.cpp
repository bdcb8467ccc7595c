#include "kernels/cpu/cpu_comm.h"

#include <stdexcept>

#include "kernels/ops.h"


namespace omni::kernels {

CpuCommunicator::CpuCommunicator(std::vector<std::shared_ptr<Device>> devs) : devs_(std::move(devs)) {
  if (devs_.empty()) throw std::invalid_argument("communicator without devices");
}

void CpuCommunicator::all_reduce_sum(std::vector<Tensor>& parts) {
  if (parts.size() != devs_.size())
    throw std::invalid_argument("all_reduce_sum: " + std::to_string(parts.size()) + " parts for " +
                                std::to_string(devs_.size()) + " ranks");
  if (parts.size() == 1) return;
  for (size_t r = 0; r < parts.size(); ++r)
    if (parts[r].shape() != parts[0].shape() || &parts[r].device() != devs_[r].get())
      throw std::invalid_argument("all_reduce_sum: part " + std::to_string(r) + " is " + parts[r].describe());
  std::vector<float> sum = parts[0].to_host();
  for (size_t r = 1; r < parts.size(); ++r) {
    const std::vector<float> p = parts[r].to_host();
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += p[i];
  }
  for (size_t r = 0; r < parts.size(); ++r) {
    const auto& dev = devs_[r];
    Tensor staged = Tensor::from_host(dev, parts[r].dtype(), parts[r].shape(), sum.data());
    dev->ops().copy(staged, parts[r]);
  }
}

}  // namespace omni::kernels
