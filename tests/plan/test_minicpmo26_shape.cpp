// The planner on MiniCPM-o 2.6 (tests/data/minicpmo26-tiny): it counts what ChatModel loads
// (llm.*, vpm.*, resampler.*), never the audio and speech parts that are skipped at load
// (apm.*, audio_projection_layer.*, tts.*; model/omni_parts.h), and refuses what the loader
// refuses, naming the field.
#include <catch2/catch.hpp>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "plan/cost.h"
#include "plan_fixtures.h"

using namespace omni;

namespace {

// Elements of the tiny checkpoint's tensors, split into the parts that load and the rest.
struct Counted {
  int64_t loaded = 0, skipped = 0;
};

Counted count_elements(const std::string& file) {
  std::ifstream f(file, std::ios::binary);
  uint64_t n = 0;
  f.read(reinterpret_cast<char*>(&n), 8);
  std::string h(n, '\0');
  f.read(h.data(), std::streamsize(n));
  const nlohmann::json header = nlohmann::json::parse(h);
  Counted c;
  for (const auto& [name, t] : header.items()) {
    if (name == "__metadata__") continue;
    int64_t e = 1;
    for (const auto& d : t["shape"]) e *= d.get<int64_t>();
    const bool loads = name.rfind("llm.", 0) == 0 || name.rfind("vpm.", 0) == 0 || name.rfind("resampler.", 0) == 0;
    (loads ? c.loaded : c.skipped) += e;
  }
  return c;
}

nlohmann::json tiny_config() {
  std::ifstream f(test::data("minicpmo26-tiny/config.json"));
  return nlohmann::json::parse(f);
}

}  // namespace

TEST_CASE("the plan of MiniCPM-o 2.6 counts only the parts that load", "[plan][minicpmo26]") {
  const plan::ModelShape m = test::shape_of("minicpmo26-tiny");
  CHECK(m.llm.arch == "qwen2");
  REQUIRE(m.vision);
  CHECK(m.query_num == 16);

  const plan::CostModel cm(m, {});
  const int64_t planned = (cm.embed_params() + m.llm.n_layers * cm.layer_params() + cm.final_norm_params() +
                           cm.lm_head_params() + cm.vision_params() + cm.resampler_params())
                              .total();
  const Counted file = count_elements(test::data("minicpmo26-tiny/model.safetensors"));
  REQUIRE(file.skipped > 0);
  CHECK(planned == file.loaded);

  // One cpu device with float32 copies (4 bytes an element): its weights are the loaded parts, nothing more.
  const plan::Plan p = plan::make_plan(m, test::options("cpu:0"));
  int64_t weights = 0;
  for (const auto& d : p.devices) weights += d.weight_bytes;
  CHECK(weights == file.loaded * 4);
}

TEST_CASE("MiniCPM-o 2.6 plans as MiniCPM-V 2.6 with the same LLM and vision fields", "[plan][minicpmo26]") {
  nlohmann::json o = tiny_config();
  nlohmann::json v = o;
  v["model_type"] = "minicpmv";
  v["architectures"] = {"MiniCPMV"};
  for (const char* k : {"audio_config", "tts_config", "init_audio", "init_tts", "init_vision", "audio_pool_step",
                        "audio_chunk_length", "stream_input"})
    v.erase(k);
  const plan::ModelShape mo = plan::ModelShape::from_json(o, "o");
  const plan::ModelShape mv = plan::ModelShape::from_json(v, "v");
  const plan::Plan po = plan::make_plan(mo, test::options("cpu:0,cpu:1"));
  const plan::Plan pv = plan::make_plan(mv, test::options("cpu:0,cpu:1"));
  REQUIRE(po.devices.size() == pv.devices.size());
  for (size_t i = 0; i < po.devices.size(); ++i) {
    CHECK(po.devices[i].weight_bytes == pv.devices[i].weight_bytes);
    CHECK(po.devices[i].components == pv.devices[i].components);
    CHECK(po.devices[i].first_layer == pv.devices[i].first_layer);
  }
}

TEST_CASE("the planner refuses a MiniCPM-o it cannot run, naming the field", "[plan][minicpmo26][errors]") {
  nlohmann::json cfg = tiny_config();
  cfg["version"] = 4.5;
  CHECK_THROWS_WITH(plan::ModelShape::from_json(cfg, "x/config.json"),
                    Catch::Contains("x/config.json") && Catch::Contains("MiniCPM-o version 4.5 is not supported yet"));
  cfg = tiny_config();
  cfg["init_vision"] = false;
  CHECK_THROWS_WITH(plan::ModelShape::from_json(cfg, "x/config.json"), Catch::Contains("init_vision"));
  cfg = tiny_config();
  cfg.erase("vision_config");
  CHECK_THROWS_WITH(plan::ModelShape::from_json(cfg, "x/config.json"),
                    Catch::Contains("MiniCPM-o config without vision_config"));
}
