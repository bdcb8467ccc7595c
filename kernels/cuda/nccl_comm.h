#pragma once
// The NCCL communicator: kernels/comm.h's Communicator over CUDA devices of one process,
// built as libomni_backend_nccl.so (kernels/backend.h: a GPU box without NCCL keeps its GPUs).
// One thread drives every rank: each collective issues its per-rank calls inside
// ncclGroupStart/ncclGroupEnd on the ranks' device streams, then waits for them.
// Note: NCCL chooses its own reduction order (ring/tree), so sums are deterministic for
// a fixed topology and size but not "in rank order" bit for bit as the CPU communicator.
#include <memory>
#include <vector>

#include "kernels/comm.h"

namespace omni::kernels {

class NcclCommunicator final : public Communicator {
 public:
  // All devices must be CudaDevices with distinct GPU indices.
  explicit NcclCommunicator(const std::vector<std::shared_ptr<Device>>& devs);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  const std::vector<std::shared_ptr<Device>>& devices() const override { return devs_; }
  // In place, BF16 or F32 parts, one per rank.
  void all_reduce_sum(std::vector<Tensor>& parts) override;

 private:
  std::vector<std::shared_ptr<Device>> devs_;
  std::vector<void*> comms_;   // ncclComm_t per rank
};

}  // namespace omni::kernels
