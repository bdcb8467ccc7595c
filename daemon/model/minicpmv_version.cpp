#include "model/minicpmv_version.h"

#include <cmath>

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

}  // namespace

MiniCpmvVersion MiniCpmvVersion::from_config(const nlohmann::json& cfg, const std::string& source) {
  if (!cfg.contains("version") || !cfg["version"].is_number())
    throw Error(source + ": MiniCPM-V config without a numeric 'version'");
  const double v = cfg["version"].get<double>();
  // 2.6: Qwen2-7B (modeling_minicpmv.py chat(): repetition_penalty 1.05). Video as its docs'
  // encode_video: 1 fps, 64 frames, each frame a picture with max_slice_nums 2.
  if (std::fabs(v - 2.6) < 1e-6) return {"2.6", "qwen2", chat_defaults(1.05f), {false, 1, 64, 1, 2}};
  // 4.5: Qwen3-8B; chat() without thinking: repetition_penalty 1.03. Video as its model card's
  // encode_video: choose_fps 3, 180 groups of up to 3 frames, max_slice_nums 1.
  if (std::fabs(v - 4.5) < 1e-6) return {"4.5", "qwen3", chat_defaults(1.03f), {true, 3, 180, 3, 1}};
  throw Error(source + ": MiniCPM-V version " + cfg["version"].dump() +
              " is not supported yet (supported: 2.6, 4.5)");
}

}  // namespace omni
