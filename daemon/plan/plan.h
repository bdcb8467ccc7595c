#pragma once
// The planner: given a model's shape and the devices, decides which device holds which
// decoder layers (contiguous ranges, pipeline) or which heads (tensor parallel), where
// the embeddings, lm_head, vision tower and resampler go, and whether everything fits:
// weights, KV cache for context x concurrency, workspace, minus a reserve per device.
// After the decoder is placed, every other device with room gets a copy of the vision
// tower and resampler ("vision_copy"), so a request's pictures and a video's frames are
// encoded on several devices at once (model/vision_encoder.h).
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
#include "plan/quantization.h"

namespace omni::plan {

enum class Parallel { Auto, Single, Pipeline, Tensor };
std::string to_string(Parallel p);
Parallel parse_parallel(const std::string& s);   // "auto" | "single" | "pipeline" | "tensor"

struct PlanOptions {
  std::vector<kernels::DeviceId> devices;         // in order; a device listed twice hosts two stages
  std::map<std::string, int64_t> max_memory;      // "cpu:1" -> byte cap (replaces what the device reports)
  std::vector<double> split;                      // pipeline: relative layer shares per listed device
  Parallel parallel = Parallel::Auto;
  std::optional<kernels::DeviceId> vision_device;   // the primary vision copy
  // Devices that hold a vision copy. Empty: every device of the plan with room for one
  // (left out otherwise). Given: each must have room (UsageError naming it and the bytes),
  // and the primary copy goes to one of them.
  std::vector<kernels::DeviceId> vision_devices;
  Workload workload;
  // How cpu devices keep weight matrices (kernels/cpu_weights.h): the bytes counted and
  // what the devices are made with.
  kernels::CpuWeights cpu_weights = kernels::CpuWeights::F32;
  // What a device offers when no cap is given; default asks the device (cudaMemGetInfo, host memory).
  std::function<int64_t(const kernels::DeviceId&)> device_memory;
};

struct DevicePlan {
  kernels::DeviceId id;
  int first_layer = -1, last_layer = -1;   // inclusive; -1: no layers
  // "embed", "final_norm", "lm_head", "vision", "resampler" (the primary vision copy), or
  // "vision_copy", "resampler_copy" (another copy, for encoding pictures side by side)
  std::vector<std::string> components;
  int64_t weight_bytes = 0, kv_bytes = 0, workspace_bytes = 0;
  int64_t vision_bytes = 0;                // of the above: what its vision copy adds (weights, workspace)
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
  kernels::CpuWeights cpu_weights = kernels::CpuWeights::F32;   // what cpu devices are made with
  kernels::DType cpu_matrix_dtype = kernels::DType::F32;      // what that keeps this model's matrices in
  int64_t kv_blocks = 0;                    // the KV pool every device holds its layers of
  // Devices of vision_devices (or of the plan, by default) left without a copy for want of
  // room, with what a copy needs there and what is free: for `omnid plan` to say why.
  struct VisionLeftOut {
    kernels::DeviceId id;
    int64_t needed_bytes = 0, free_bytes = 0;
  };
  std::vector<VisionLeftOut> vision_left_out;
  // The checkpoint's NF4 weights, when `omnid plan` found weights beside config.json.
  std::optional<QuantizationSummary> quantization;

  // The devices holding a vision copy: the primary first, then the other copies in plan order.
  std::vector<kernels::DeviceId> vision_devices() const;

  // Budget left on a stage after its weights, KV cache and workspace.
  int64_t free_after_load(size_t i) const;
  std::string json() const;
  std::string table() const;
  bool has_cpu() const;   // any cpu device among the entries
};

// Plans, or throws omni::Error: contradictory options with the reason, or a model that
// does not fit with needed and available bytes per device.
Plan make_plan(const ModelShape& model, const PlanOptions& opt);

// Memory a device offers the engine (its cap, else what it reports) and the reserve kept back.
int64_t device_reserve(const kernels::DeviceId& id, bool capped, int64_t offered);

}  // namespace omni::plan
