#pragma once
// What differs between the MiniCPM-V releases we run, read from config.json's `version`:
// the language model's architecture and chat() generation defaults. The vision tower,
// resampler (for still pictures), slicing and placeholders are shared (docs/models.md).
#include <nlohmann/json.hpp>
#include <string>

#include "model/sampler.h"

namespace omni {

// How a release's released code turns a video into its prompt (docs/video.md).
struct VideoDefaults {
  bool grouped = false;    // 4.5: frames packed in groups sharing a placeholder, with temporal ids
  double fps = 1;          // frames sampled per second (encode_video's choose_fps)
  int max_frames = 64;     // 2.6 MAX_NUM_FRAMES (frames); 4.5 MAX_NUM_FRAMES (groups)
  int max_packing = 1;     // 4.5 MAX_NUM_PACKING
  int max_slice_nums = 2;  // chat(max_slice_nums=...) for video
};

struct MiniCpmvVersion {
  std::string name;        // "2.6", "4.5"
  std::string llm_arch;    // LlmConfig::arch of the language model
  SamplingParams defaults; // chat(sampling=True) settings of that release
  VideoDefaults video;

  // From a config.json whose model_type is "minicpmv"; throws naming `source` and the
  // supported versions when `version` is missing or not one we run.
  static MiniCpmvVersion from_config(const nlohmann::json& cfg, const std::string& source);
};

}  // namespace omni
