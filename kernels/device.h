#pragma once
// Devices: where tensors live and ops run. cpu:N devices exist so that every
// multi-device path (pipeline, tensor parallel, planner) runs in CI without a GPU;
// each has its own memory budget. cuda:N devices come from the CUDA backend (kernels/backend.h).
#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cpu_weights.h"
#include "dtype.h"
#include "turn_lock.h"

namespace omni::kernels {

class Ops;

struct DeviceId {
  enum class Kind : uint8_t { CPU, CUDA };
  Kind kind = Kind::CPU;
  int index = 0;

  std::string str() const;
  // Parses "cpu", "cpu:1", "cuda:0"; throws std::invalid_argument naming the text.
  static DeviceId parse(const std::string& text);
  // Parses a comma-separated list ("cpu:0,cpu:1").
  static std::vector<DeviceId> parse_list(const std::string& text);
  bool operator==(const DeviceId&) const = default;
};

class Device {
 public:
  virtual ~Device() = default;
  virtual DeviceId id() const = 0;
  // The memory this device offers the engine, and what is still unallocated.
  virtual size_t total_memory() const = 0;
  virtual size_t free_memory() const = 0;
  // Raw allocations; throw std::runtime_error naming the device when the budget is exceeded.
  virtual void* alloc(size_t bytes) = 0;
  virtual void release(void* p, size_t bytes) = 0;
  // Host <-> device transfers of raw bytes.
  virtual void upload(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void download(void* host_dst, const void* src, size_t bytes) = 0;
  // The dtype activations (and the weights other than matrices) are kept in on this device.
  virtual DType compute_dtype() const = 0;
  // The dtype a weight matrix (a linear layer's weight, an embedding table) that the
  // checkpoint holds in `released` is kept in here: the compute dtype unless the device
  // says otherwise (cpu devices: --cpu-weights, kernels/cpu_weights.h).
  virtual DType weight_dtype(DType released) const { (void)released; return compute_dtype(); }
  // Host memory used in place (a weight read straight from the checkpoint's memory map):
  // charges `bytes` to this device's budget and returns true, or returns false when the
  // device needs a copy of its own (a GPU) or the budget is spent.
  virtual bool adopt_host(size_t bytes) { (void)bytes; return false; }
  virtual void unadopt_host(size_t bytes) { (void)bytes; }
  virtual Ops& ops() = 0;
  // Waits for queued work (no-op on CPU).
  virtual void synchronize() {}
  // Host threads that issue work on this device concurrently (pipeline stage threads, the
  // scheduler encoding a picture) hold this while they do: a device's Ops keep per-device
  // state (cuBLAS handle, workspace, staging) that is not for concurrent use. Turns are
  // taken in arrival order (turn_lock.h).
  TurnLock& exec_mutex() const { return exec_mu_; }

 private:
  mutable TurnLock exec_mu_;
};

// Creates the device named by `id` through its backend (kernels/backend_registry.cpp).
// memory_cap 0 means "what the device has"; cpu_weights applies to cpu devices only.
std::shared_ptr<Device> make_device(const DeviceId& id, size_t memory_cap = 0, CpuWeights cpu_weights = CpuWeights::F32);

// Host memory available to cpu devices.
size_t host_available_memory();
// Devices of `kind` this process can use: 0 for CUDA when its backend is not available
// (backend_detail says why).
int device_count(DeviceId::Kind kind);
std::string backend_detail(DeviceId::Kind kind);

}  // namespace omni::kernels
