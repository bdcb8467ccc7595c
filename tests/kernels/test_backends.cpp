// Backend selection (kernels/backend.h): the CPU backend is always there; the CUDA backend
// is loaded only where the NVIDIA driver is, so a CPU-only process never maps the CUDA
// libraries, and asking it for a GPU says why there is none.
#include <dlfcn.h>

#include <catch2/catch.hpp>

#include <fstream>
#include <string>

#include "kernels/backend.h"
#include "kernels/comm.h"
#include "kernels/cpu/cpu_comm.h"
#include "kernels/device.h"
#include "util/skip.h"

using namespace omni::kernels;

namespace {

bool driver_present() {
  void* h = ::dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL | RTLD_NOLOAD);
  if (!h) h = ::dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  return h != nullptr;
}

// The libraries this process has mapped whose file name contains `part`.
std::string mapped(const std::string& part) {
  std::ifstream maps("/proc/self/maps");
  std::string line, found;
  while (std::getline(maps, line))
    if (line.find(part) != std::string::npos) found += line + "\n";
  return found;
}

const BackendStatus* status_of(const std::vector<BackendStatus>& all, const std::string& name) {
  for (const auto& s : all)
    if (s.name == name) return &s;
  return nullptr;
}

}  // namespace

TEST_CASE("the cpu backend is built in and makes cpu devices of any index", "[backends]") {
  const auto all = backend_statuses();
  const BackendStatus* cpu = status_of(all, "cpu");
  REQUIRE(cpu);
  CHECK(cpu->available);
  REQUIRE(backend_for(DeviceId::Kind::CPU));
  auto dev = make_device(DeviceId::parse("cpu:3"), size_t(1) << 20);
  CHECK(dev->id().str() == "cpu:3");
  CHECK(dev->total_memory() == size_t(1) << 20);
  // cpu devices share the in-process communicator.
  auto other = make_device(DeviceId::parse("cpu:4"), size_t(1) << 20);
  auto comm = make_communicator({dev, other});
  CHECK(dynamic_cast<CpuCommunicator*>(comm.get()) != nullptr);
  CHECK(comm->size() == 2);
}

TEST_CASE("without the NVIDIA driver no CUDA library is mapped and cuda devices say why", "[backends]") {
  if (driver_present()) OMNI_SKIP("the NVIDIA driver is installed here");
  const auto all = backend_statuses();
  const BackendStatus* cuda = status_of(all, "cuda");
  REQUIRE(cuda);
  CHECK_FALSE(cuda->available);
  CHECK(cuda->detail.find("libcuda.so.1") != std::string::npos);
  CHECK(backend_for(DeviceId::Kind::CUDA) == nullptr);
  CHECK(device_count(DeviceId::Kind::CUDA) == 0);
  try {
    make_device(DeviceId::parse("cuda:0"));
    FAIL("a cuda device was made without a driver");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find("cuda:0") != std::string::npos);
    CHECK(std::string(e.what()).find("CUDA backend is not available") != std::string::npos);
  }
  // Asked about every backend, the process still holds no CUDA runtime, cuBLAS or NCCL.
  CHECK(mapped("libcudart") == "");
  CHECK(mapped("libcublas") == "");
  CHECK(mapped("libnccl") == "");
  CHECK(mapped("libomni_backend_cuda") == "");
}
