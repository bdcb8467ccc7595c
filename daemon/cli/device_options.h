#pragma once
// The device flags shared by commands that load a model (--devices, --parallel,
// --max-memory, --split, --vision-device, ...), the plan they imply, and the placement
// the model loads onto. A model that does not fit is refused before any weight loads.
#include <CLI/CLI.hpp>
#include <string>

#include "model/causal_lm.h"
#include "plan/plan.h"

namespace omni {

struct DeviceOptions {
  std::string devices;            // empty: discovered (every CUDA device, else cpu:0)
  bool use_multi_gpu = true;      // false: the first device only
  std::string parallel = "auto";  // auto | single | pipeline | tensor
  std::string max_memory;         // "cpu:0=64MiB,cuda:1=20GiB"
  std::string split;              // pipeline layer weights per listed device, "3,1"
  std::string vision_device;      // empty: where headroom remains
  std::string vision_devices;     // copies of the vision tower, "cpu:0,cpu:1"; empty: every device of the plan with room
  int64_t context = 0;            // tokens per sequence budgeted; 0: min(max_position_embeddings, 4096)
  int concurrency = 1;            // sequences budgeted at once
  int64_t kv_tokens = 0;          // KV pool size; 0: context x concurrency
  int threads = 0;                // CPU threads per cpu device; 0: cores / cpu devices (kernels/cpu/cpu_threads.h)
  std::string cpu_weights = "auto";   // auto | f32 | bf16 | int8: how cpu devices keep weight matrices (kernels/cpu_weights.h)

  // `with_workload` adds --context and --concurrency (serve has its own).
  void add_to(CLI::App* cmd, bool with_workload = true);
  // The device list after discovery and use_multi_gpu.
  std::vector<kernels::DeviceId> device_list() const;
  plan::PlanOptions plan_options(const LlmConfig& cfg) const;
  plan::Plan make_plan(const plan::ModelShape& model) const;
  // Plans for the model in `model_dir` (its config.json, for the vision parts) when the
  // loader hands over the decoder config, and makes the devices. Logs the plan.
  CausalLm::PlaceFn placer(const std::string& model_dir = "") const;
  // Sets the CPU threads for the devices about to be made (placer() does).
  void apply_threads() const;
  // Where each part of a loaded decoder sits, as JSON (for status).
  static std::string placement_json(const Decoder& dec);
};

}  // namespace omni
