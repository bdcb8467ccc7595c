#pragma once
// What differs between the MiniCPM-V / MiniCPM-o releases we run, read from config.json's
// `model_type` and `version`: the language model's architecture, chat() generation defaults,
// video settings, the placeholder layout, how the released code feeds pieces to the vision
// tower, and whether the checkpoint carries audio/speech parts that omnid skips. One row per
// release in minicpmv_version.cpp; slicing and the resampler are shared (docs/models.md).
#include <nlohmann/json.hpp>
#include <string>

#include "image/placeholder.h"
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

// How the released code lays out a vision tower call.
enum class VisionInput {
  // 2.6 and later: pieces padded in a batch with padded keys masked and 2-D position
  // buckets from tgt_sizes, which equals one unpadded piece at a time.
  per_piece,
  // 2.5: every piece of the call is one row of patches padded to the longest piece, with no
  // key mask and 1-D position buckets over that row (its patch mask sets whole rows), so a
  // piece's rows depend on the longest piece of the request (VisionTower::encode_strip).
  padded_strip,
};

struct MiniCpmvVersion {
  std::string family;      // "MiniCPM-V", "MiniCPM-o"
  std::string name;        // "2.5", "2.6", "4.5"
  std::string llm_arch;    // LlmConfig::arch of the language model
  SamplingParams defaults; // chat(sampling=True) settings of that release
  VideoDefaults video;
  bool video_supported = true;   // false: the release has no video recipe (2.5)
  image::PlaceholderSchema placeholders = image::PlaceholderSchema::slice_per_piece;
  bool image_ids = true;   // the processor can number pictures (<image_id>, 2.6 and later)
  VisionInput vision_input = VisionInput::per_piece;
  // Prompt rows with this id are padding for generation, or -1 for none: 2.6's chat()
  // passes attention_mask = ids != 0 (pad_token_id 0); 2.5's generate() gets no mask, so
  // every prompt row is attended (a "!", id 0 in Llama-3, is ordinary text there).
  int32_t pad_id = 0;
  // MiniCPM-o: the checkpoint also holds an audio encoder and a speech decoder, which are
  // skipped at load (model/omni_parts.h).
  bool omni = false;

  // Whether config.json's model_type is one of the families above ("minicpmv", "minicpmo").
  static bool applies_to(const nlohmann::json& cfg);
  // From such a config; `version` may be a number or a string ("2.5" in 2.5's file). Throws
  // naming `source`, the field and the supported versions when it is missing or not one we
  // run for that model_type.
  static MiniCpmvVersion from_config(const nlohmann::json& cfg, const std::string& source);
};

}  // namespace omni
