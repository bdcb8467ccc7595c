#pragma once
// Collective communication between the ranks of a tensor-parallel group. One thread
// drives every rank (as NCCL allows inside ncclGroupStart/ncclGroupEnd), so a call hands
// over one tensor per rank; a NCCL communicator implements the same interface on CUDA,
// the in-process CPU communicator (kernels/cpu/cpu_comm.h) runs it in CI.
#include <memory>
#include <vector>

#include "tensor.h"

namespace omni::kernels {

class Communicator {
 public:
  virtual ~Communicator() = default;
  // The ranks' devices, rank 0 first.
  virtual const std::vector<std::shared_ptr<Device>>& devices() const = 0;
  int size() const { return int(devices().size()); }
  // parts[r] lives on rank r's device; all have one shape. Afterwards every part holds
  // the element-wise sum over the ranks, added in rank order (deterministic).
  virtual void all_reduce_sum(std::vector<Tensor>& parts) = 0;
};

// The communicator for `devs`: NCCL when all are CUDA devices and libomni_backend_nccl.so
// loads (kernels/backend_registry.cpp), else the in-process one (through host memory).
std::shared_ptr<Communicator> make_communicator(const std::vector<std::shared_ptr<Device>>& devs);

}  // namespace omni::kernels
