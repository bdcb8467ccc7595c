#include "kernels/cuda/nccl_comm.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <stdexcept>
#include <string>

#include "kernels/backend.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_device.h"

namespace omni::kernels {

namespace {

void nccl_check(ncclResult_t r, const char* what) {
  if (r != ncclSuccess) throw std::runtime_error(std::string("NCCL error: ") + what + ": " + ncclGetErrorString(r));
}

CudaDevice& cuda_of(const std::shared_ptr<Device>& d) {
  auto* c = dynamic_cast<CudaDevice*>(d.get());
  if (!c) throw std::invalid_argument("NCCL communicator over a non-CUDA device " + d->id().str());
  return *c;
}

ncclDataType_t nccl_type(const Tensor& t) {
  switch (t.dtype()) {
    case DType::BF16: return ncclBfloat16;
    case DType::F32: return ncclFloat32;
    case DType::F16: return ncclFloat16;
    case DType::I32: return ncclInt32;
    case DType::Q8_0: break;   // weights only, never summed
  }
  throw std::invalid_argument("NCCL: dtype of " + t.describe());
}

// ncclGroupEnd on scope exit, so a throwing per-rank call never leaves a group open.
struct Group {
  Group() { nccl_check(ncclGroupStart(), "ncclGroupStart"); }
  ~Group() {
    if (!done) (void)ncclGroupEnd();
  }
  void end() {
    done = true;
    nccl_check(ncclGroupEnd(), "ncclGroupEnd");
  }
  bool done = false;
};

}  // namespace

NcclCommunicator::NcclCommunicator(const std::vector<std::shared_ptr<Device>>& devs) : devs_(devs) {
  if (devs_.empty()) throw std::invalid_argument("NCCL communicator over no devices");
  std::vector<int> ids;
  for (const auto& d : devs_) ids.push_back(cuda_of(d).index());
  std::vector<ncclComm_t> comms(devs_.size());
  nccl_check(ncclCommInitAll(comms.data(), int(comms.size()), ids.data()), "ncclCommInitAll");
  for (auto c : comms) comms_.push_back(c);
}

NcclCommunicator::~NcclCommunicator() {
  for (void* c : comms_) ncclCommDestroy(static_cast<ncclComm_t>(c));
}

void NcclCommunicator::all_reduce_sum(std::vector<Tensor>& parts) {
  if (parts.size() != devs_.size())
    throw std::invalid_argument("all_reduce_sum: " + std::to_string(parts.size()) + " parts for " +
                                std::to_string(devs_.size()) + " ranks");
  for (size_t r = 0; r < parts.size(); ++r)
    if (&parts[r].device() != devs_[r].get() || parts[r].numel() != parts[0].numel() ||
        parts[r].dtype() != parts[0].dtype())
      throw std::invalid_argument("all_reduce_sum: part " + std::to_string(r) + " is " + parts[r].describe());
  {
    Group g;
    for (size_t r = 0; r < parts.size(); ++r) {
      CudaDevice& d = cuda_of(devs_[r]);
      d.make_current();
      nccl_check(ncclAllReduce(parts[r].raw(), parts[r].raw(), size_t(parts[r].numel()), nccl_type(parts[r]), ncclSum,
                               static_cast<ncclComm_t>(comms_[r]), static_cast<cudaStream_t>(d.stream())),
                 "ncclAllReduce");
    }
    g.end();
  }
  for (auto& d : devs_) d->synchronize();
}

}  // namespace omni::kernels

// The entry point kernels/backend_registry.cpp looks up.
extern "C" __attribute__((visibility("default"))) std::shared_ptr<omni::kernels::Communicator>
omni_communicator_nccl_v1(int abi, const std::vector<std::shared_ptr<omni::kernels::Device>>& devs) {
  if (abi != omni::kernels::kBackendAbi) return nullptr;
  return std::make_shared<omni::kernels::NcclCommunicator>(devs);
}
