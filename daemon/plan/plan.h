#pragma once
// The planner: given a model's shape and the devices, decides which device holds which
// decoder layers (contiguous ranges, pipeline) or which heads (tensor parallel), where
// the embeddings, lm_head, vision tower and resampler go, and whether everything fits:
// weights, KV cache for context x concurrency, workspace, minus a reserve per device.
// It reads no weights: a model that does not fit is refused before loading.
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kernels/device.h"
#include "plan/cost.h"
#include "plan/model_shape.h"

namespace omni::plan {

enum class Parallel { Auto, Single, Pipeline, Tensor };
std::string to_string(Parallel p);
Parallel parse_parallel(const std::string& s);   // "auto" | "single" | "pipeline" | "tensor"

struct PlanOptions {
  std::vector<kernels::DeviceId> devices;         // in order; a device listed twice hosts two stages
  std::map<std::string, int64_t> max_memory;      // "cpu:1" -> byte cap (replaces what the device reports)
  std::vector<double> split;                      // pipeline: relative layer shares per listed device
  Parallel parallel = Parallel::Auto;
  std::optional<kernels::DeviceId> vision_device;
  Workload workload;
  // What a device offers when no cap is given; default asks the device (cudaMemGetInfo, host memory).
  std::function<int64_t(const kernels::DeviceId&)> device_memory;
};

struct DevicePlan {
  kernels::DeviceId id;
  int first_layer = -1, last_layer = -1;   // inclusive; -1: no layers
  std::vector<std::string> components;     // "embed", "final_norm", "lm_head", "vision", "resampler"
  int64_t weight_bytes = 0, kv_bytes = 0, workspace_bytes = 0;
  int64_t available_bytes = 0;             // budget after the reserve (shared by a device's stages)
  double cost = 0;                         // relative compute per token
  int64_t needed_bytes() const { return weight_bytes + kv_bytes + workspace_bytes; }
  bool has(const std::string& c) const;
};

struct Plan {
  Parallel parallel = Parallel::Single;
  int n_layers = 0;
  std::vector<DevicePlan> devices;          // one per listed device, in order
  std::map<std::string, int64_t> max_memory;   // the caps the devices are made with
  int64_t kv_blocks = 0;                    // the KV pool every device holds its layers of

  // Budget left on a stage after its weights, KV cache and workspace.
  int64_t free_after_load(size_t i) const;
  std::string json() const;
  std::string table() const;
};

// Plans, or throws omni::Error: contradictory options with the reason, or a model that
// does not fit with needed and available bytes per device.
Plan make_plan(const ModelShape& model, const PlanOptions& opt);

// Memory a device offers the engine (its cap, else what it reports) and the reserve kept back.
int64_t device_reserve(const kernels::DeviceId& id, bool capped, int64_t offered);

}  // namespace omni::plan
