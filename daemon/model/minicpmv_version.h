#pragma once
// What differs between the MiniCPM-V / MiniCPM-o releases we run, read from config.json's
// `model_type` and `version`: the language model's architecture, chat() generation defaults,
// video settings and whether the checkpoint carries audio/speech parts that omnid skips.
// The vision tower, resampler (for still pictures), slicing and placeholders are shared
// (docs/models.md).
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
  std::string family;      // "MiniCPM-V", "MiniCPM-o"
  std::string name;        // "2.6", "4.5"
  std::string llm_arch;    // LlmConfig::arch of the language model
  SamplingParams defaults; // chat(sampling=True) settings of that release
  VideoDefaults video;
  // MiniCPM-o: the checkpoint also holds an audio encoder and a speech decoder, which are
  // skipped at load (model/omni_parts.h).
  bool omni = false;

  // Whether config.json's model_type is one of the families above ("minicpmv", "minicpmo").
  static bool applies_to(const nlohmann::json& cfg);
  // From such a config; throws naming `source`, the field and the supported versions when
  // `version` is missing or not one we run for that model_type.
  static MiniCpmvVersion from_config(const nlohmann::json& cfg, const std::string& source);
};

}  // namespace omni
