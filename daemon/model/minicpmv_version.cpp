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
    MiniCpmvVersion v25{"2.5", "llama", chat_defaults(1.05f), {false, 1, 64, 1, 2}};
    v25.video_supported = false;
    v25.placeholders = PlaceholderSchema::slices_in_one_block;
    v25.image_ids = false;
    v25.vision_input = VisionInput::padded_strip;
    v25.pad_id = -1;
    r.push_back({2.5, v25});
    // 2.6: Qwen2-7B (repetition_penalty 1.05). Video as its docs' encode_video: 1 fps, 64
    // frames, each frame a picture with max_slice_nums 2.
    r.push_back({2.6, {"2.6", "qwen2", chat_defaults(1.05f), {false, 1, 64, 1, 2}}});
    // 4.5: Qwen3-8B; chat() without thinking: repetition_penalty 1.03. Video as its model
    // card's encode_video: choose_fps 3, 180 groups of up to 3 frames, max_slice_nums 1.
    r.push_back({4.5, {"4.5", "qwen3", chat_defaults(1.03f), {true, 3, 180, 3, 1}}});
    return r;
  }();
  return rows;
}

std::string supported_list() {
  std::string s;
  for (const Row& r : releases()) s += (s.empty() ? "" : ", ") + r.release.name;
  return s;
}

}  // namespace

MiniCpmvVersion MiniCpmvVersion::from_config(const nlohmann::json& cfg, const std::string& source) {
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
    throw Error(source + ": MiniCPM-V config without a numeric 'version'" +
                (it == cfg.end() ? std::string() : " (got " + it->dump() + ")") + " (supported: " + supported_list() +
                ")");
  for (const Row& r : releases())
    if (std::fabs(v - r.version) < 1e-6) return r.release;
  throw Error(source + ": MiniCPM-V version " + it->dump() + " is not supported yet (supported: " + supported_list() +
              ")");
}

}  // namespace omni
