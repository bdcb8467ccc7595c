#pragma once
// The in-process communicator: every rank's tensor goes through a host float32 buffer,
// summed in rank order, and is written back to each rank. Correct on any device mix;
// it exists so tensor parallelism is tested without GPUs, not to be fast.
#include "kernels/comm.h"

namespace omni::kernels {

class CpuCommunicator final : public Communicator {
 public:
  explicit CpuCommunicator(std::vector<std::shared_ptr<Device>> devs);
  const std::vector<std::shared_ptr<Device>>& devices() const override { return devs_; }
  void all_reduce_sum(std::vector<Tensor>& parts) override;

 private:
  std::vector<std::shared_ptr<Device>> devs_;
};

}  // namespace omni::kernels
