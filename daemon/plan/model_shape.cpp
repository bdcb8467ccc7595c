#include "plan/model_shape.h"

#include <fstream>

#include "model/minicpmv_version.h"
#include "model/omni_parts.h"
#include "util/error.h"

namespace omni::plan {

namespace {

// LlmConfig::from_json has checked the value is one of these three.
kernels::DType released_dtype(const nlohmann::json& cfg) {
  const std::string d = cfg.value("torch_dtype", cfg.value("dtype", std::string("float32")));
  return d == "bfloat16" ? kernels::DType::BF16 : d == "float16" ? kernels::DType::F16 : kernels::DType::F32;
}

}  // namespace

ModelShape ModelShape::from_dir(const std::string& dir) {
  const std::string path = dir + "/config.json";
  std::ifstream f(path);
  if (!f) throw Error(path + ": cannot open (is --model a checkpoint folder?)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const std::exception& e) {
    throw Error(path + ": " + e.what());
  }
  return from_json(j, path);
}

ModelShape ModelShape::from_json(const nlohmann::json& cfg, const std::string& src) {
  ModelShape m;
  // As ChatModel::load: MiniCPM-V and MiniCPM-o carry the LLM's fields at the top level.
  // Only the parts that load are counted: MiniCPM-o's audio/speech parts (audio_config,
  // tts_config) are skipped at load (model/omni_parts.h) and never enter the plan.
  const bool vlm = MiniCpmvVersion::applies_to(cfg);
  std::optional<MiniCpmvVersion> release;
  if (vlm) release = MiniCpmvVersion::from_config(cfg, src);
  if (release && release->omni) OmniParts::check_config(cfg, src);
  m.llm = LlmConfig::from_json(cfg, src, release ? release->llm_arch : "");
  m.released = released_dtype(cfg);
  if (vlm) {
    if (!cfg.contains("vision_config")) throw Error(src + ": " + release->family + " config without vision_config");
    VisionConfig vc = VisionConfig::from_json(cfg["vision_config"], src + ": vision_config");
    if (cfg.value("drop_vision_last_layer", false)) vc.n_layers -= 1;
    m.vision = vc;
    m.query_num = cfg.value("query_num", 64);
  }
  return m;
}

}  // namespace omni::plan
