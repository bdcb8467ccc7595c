#include "model/minicpmv_version.h"

#include <cmath>

#include "util/error.h"

namespace omni {

namespace {

struct Release {
  const char* model_type;
  const char* family;
  double version;
  const char* name;
  const char* llm_arch;
  float repetition_penalty;   // chat(sampling=True); temperature, top_p, top_k are shared
  VideoDefaults video;
  bool omni;
};

// 2.6: Qwen2-7B (modeling_minicpmv.py chat(): repetition_penalty 1.05). Video as its docs'
//      encode_video: 1 fps, 64 frames, each frame a picture with max_slice_nums 2.
// 4.5: Qwen3-8B; chat() without thinking: repetition_penalty 1.03. Video as its model card's
//      encode_video: choose_fps 3, 180 groups of up to 3 frames, max_slice_nums 1.
// o-2.6: Qwen2.5-7B (the Qwen2 architecture) behind 2.6's vision path; modeling_minicpmo.py
//      chat() samples as 2.6 does, and its model card samples video as 2.6's.
const Release kReleases[] = {
    {"minicpmv", "MiniCPM-V", 2.6, "2.6", "qwen2", 1.05f, {false, 1, 64, 1, 2}, false},
    {"minicpmv", "MiniCPM-V", 4.5, "4.5", "qwen3", 1.03f, {true, 3, 180, 3, 1}, false},
    {"minicpmo", "MiniCPM-o", 2.6, "2.6", "qwen2", 1.05f, {false, 1, 64, 1, 2}, true},
};

SamplingParams chat_defaults(float repetition_penalty) {
  SamplingParams p;
  p.temperature = 0.7f;
  p.top_p = 0.8f;
  p.top_k = 100;
  p.repetition_penalty = repetition_penalty;
  return p;
}

}  // namespace

bool MiniCpmvVersion::applies_to(const nlohmann::json& cfg) {
  const std::string mt = cfg.value("model_type", "");
  for (const Release& r : kReleases)
    if (mt == r.model_type) return true;
  return false;
}

MiniCpmvVersion MiniCpmvVersion::from_config(const nlohmann::json& cfg, const std::string& source) {
  const std::string mt = cfg.value("model_type", "");
  std::string family, supported;
  for (const Release& r : kReleases)
    if (mt == r.model_type) {
      family = r.family;
      supported += (supported.empty() ? "" : ", ") + std::string(r.name);
    }
  if (family.empty()) throw Error(source + ": model_type '" + mt + "' is not a MiniCPM-V or MiniCPM-o model");
  if (!cfg.contains("version") || !cfg["version"].is_number())
    throw Error(source + ": " + family + " config without a numeric 'version'");
  const double v = cfg["version"].get<double>();
  for (const Release& r : kReleases)
    if (mt == r.model_type && std::fabs(v - r.version) < 1e-6)
      return {r.family, r.name, r.llm_arch, chat_defaults(r.repetition_penalty), r.video, r.omni};
  throw Error(source + ": " + family + " version " + cfg["version"].dump() + " is not supported yet (supported: " +
              supported + ")");
}

}  // namespace omni
