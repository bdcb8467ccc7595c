#pragma once
// What the planner needs to know about a checkpoint, read from its config.json alone
// (planning must not touch the weights): the decoder's shape and, for MiniCPM-V, the
// vision tower's and resampler's.
#include <optional>
#include <string>

#include "kernels/dtype.h"
#include "model/llm_config.h"
#include "model/vision_config.h"

namespace omni::plan {

struct ModelShape {
  LlmConfig llm;
  std::optional<VisionConfig> vision;   // MiniCPM-V only
  int query_num = 0;                    // resampler queries
  // The dtype config.json says the weights are stored in (torch_dtype): what a cpu device
  // keeping them as released (kernels/cpu_weights.h) holds.
  kernels::DType released = kernels::DType::F32;

  static ModelShape from_dir(const std::string& dir);
  static ModelShape from_json(const nlohmann::json& cfg, const std::string& src);
};

}  // namespace omni::plan
