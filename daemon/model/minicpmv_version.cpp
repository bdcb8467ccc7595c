#include "model/minicpmv_version.h"

#include <cmath>
#include <cstdlib>
#include <vector>

#include "util/error.h"

namespace omni {

namespace {

SamplingParams chat_defaults(float repetition_penalty) {
  SamplingParams p;
  p.temperature = 0.7f;
  p.top_p = 0.8f;
  p.top_k = 100;
  p.repetition_penalty = repetition_penalty;
  return p;
}

struct Row {
  const char* model_type;
  double version;
  MiniCpmvVersion release;
};

const std::vector<Row>& releases() {
  using image::PlaceholderSchema;
  static const std::vector<Row> rows = [] {
    std::vector<Row> r;
    // 2.5: Llama-3-8B (modeling_minicpmv.py chat(): repetition_penalty 1.05). Its processor
    // puts all slices in one <slice> block of <image> runs and has no image ids; its vision
    // call pads pieces into one strip without a key mask; generate() gets no attention
    // mask. No video recipe in the release.
    MiniCpmvVersion v25{"MiniCPM-V", "2.5", "llama", chat_defaults(1.05f), {false, 1, 64, 1, 2}};
    v25.video_supported = false;
    v25.placeholders = PlaceholderSchema::slices_in_one_block;
    v25.image_ids = false;
    v25.vision_input = VisionInput::padded_strip;
    v25.pad_id = -1;
    r.push_back({"minicpmv", 2.5, v25});
    // 2.6: Qwen2-7B (repetition_penalty 1.05). Video as its docs' encode_video: 1 fps, 64
    // frames, each frame a picture with max_slice_nums 2.
    r.push_back({"minicpmv", 2.6, {"MiniCPM-V", "2.6", "qwen2", chat_defaults(1.05f), {false, 1, 64, 1, 2}}});
    // 4.5: Qwen3-8B; chat() without thinking: repetition_penalty 1.03. Video as its model
    // card's encode_video: choose_fps 3, 180 groups of up to 3 frames, max_slice_nums 1.
    r.push_back({"minicpmv", 4.5, {"MiniCPM-V", "4.5", "qwen3", chat_defaults(1.03f), {true, 3, 180, 3, 1}}});
    // o-2.6: Qwen2.5-7B (the Qwen2 architecture) behind 2.6's vision path; modeling_minicpmo.py
    // chat() samples as 2.6 does, and its model card samples video as 2.6's.
    MiniCpmvVersion o26{"MiniCPM-o", "2.6", "qwen2", chat_defaults(1.05f), {false, 1, 64, 1, 2}};
    o26.omni = true;
    r.push_back({"minicpmo", 2.6, o26});
    return r;
  }();
  return rows;
}

}  // namespace

bool MiniCpmvVersion::applies_to(const nlohmann::json& cfg) {
  const std::string mt = cfg.value("model_type", "");
  for (const Row& r : releases())
    if (mt == r.model_type) return true;
  return false;
}

MiniCpmvVersion MiniCpmvVersion::from_config(const nlohmann::json& cfg, const std::string& source) {
  const std::string mt = cfg.value("model_type", "");
  std::string family, supported;
  for (const Row& r : releases())
    if (mt == r.model_type) {
      family = r.release.family;
      supported += (supported.empty() ? "" : ", ") + r.release.name;
    }
  if (family.empty()) throw Error(source + ": model_type '" + mt + "' is not a MiniCPM-V or MiniCPM-o model");
  const auto it = cfg.find("version");
  double v = 0;
  bool ok = it != cfg.end() && it->is_number();
  if (ok) {
    v = it->get<double>();
  } else if (it != cfg.end() && it->is_string()) {   // 2.5's config.json says "2.5"
    const std::string s = it->get<std::string>();
    char* end = nullptr;
    v = std::strtod(s.c_str(), &end);
    ok = !s.empty() && end && *end == '\0';
  }
  if (!ok)
    throw Error(source + ": " + family + " config without a numeric 'version'" +
                (it == cfg.end() ? std::string() : " (got " + it->dump() + ")") + " (supported: " + supported + ")");
  for (const Row& r : releases())
    if (mt == r.model_type && std::fabs(v - r.version) < 1e-6) return r.release;
  throw Error(source + ": " + family + " version " + it->dump() + " is not supported yet (supported: " + supported + ")");
}

}  // namespace omni
