#pragma once
// What differs between the MiniCPM-V releases we run, read from config.json's `version`:
// the language model's architecture and chat() generation defaults. The vision tower,
// resampler (for still pictures), slicing and placeholders are shared (docs/models.md).
#include <nlohmann/json.hpp>
#include <string>

#include "model/sampler.h"

namespace omni {

struct MiniCpmvVersion {
  std::string name;        // "2.6", "4.5"
  std::string llm_arch;    // LlmConfig::arch of the language model
  SamplingParams defaults; // chat(sampling=True) settings of that release

  // From a config.json whose model_type is "minicpmv"; throws naming `source` and the
  // supported versions when `version` is missing or not one we run.
  static MiniCpmvVersion from_config(const nlohmann::json& cfg, const std::string& source);
};

}  // namespace omni
