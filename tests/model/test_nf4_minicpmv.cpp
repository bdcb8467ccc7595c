// MiniCPM-V 2.6 saved as its int4 release is (openbmb/MiniCPM-V-2_6-int4): the Linear weights
// of the vision tower and the language model NF4, what its llm_int8_skip_modules names
// (out_proj, kv_proj, lm_head) left bf16, and what is no Linear weight (embeddings, norms,
// biases, the resampler's query, proj and in_proj) bf16 as ever. Made at run time from
// minicpmv26-tiny; it must answer a picture question exactly as the same weights
// dequantized and saved plainly: vision embeddings, logits and greedy tokens.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <set>

#include "checkpoint/checkpoint.h"
#include "kernels/device.h"
#include "model/answer.h"
#include "model/chat_model.h"
#include "util/nf4_quantize.h"
#include "util/npy.h"
#include "util/safetensors_tensors.h"
#include "util/tiny_fixtures.h"

using namespace omni;
namespace fs = std::filesystem;

namespace {

// Linear layers the release quantizes: every nn.Linear whose own name is not skipped.
bool quantized_in_release(const std::string& name) {
  static const std::set<std::string> linears = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                "up_proj", "down_proj", "fc1", "fc2"};
  const std::string suffix = ".weight";
  if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
    return false;
  const std::string module = name.substr(0, name.size() - suffix.size());
  return linears.count(module.substr(module.rfind('.') + 1)) != 0;
}

struct Folder {
  fs::path dir;
  explicit Folder(const std::string& tag)
      : dir(fs::temp_directory_path() / ("omni-" + tag + "-" + std::to_string(::getpid()))) {
    fs::remove_all(dir);
    fs::create_directories(dir);
    for (const char* f : {"config.json", "generation_config.json", "preprocessor_config.json", "tokenizer.json",
                          "tokenizer_config.json"})
      fs::copy_file(test::data(std::string("minicpmv26-tiny/") + f), dir / f);
    fs::permissions(dir / "config.json", fs::perms::owner_write, fs::perm_options::add);
  }
  ~Folder() { fs::remove_all(dir); }
  std::string str() const { return dir.string(); }
};

struct Replies {
  std::vector<float> vision, logits;
  std::vector<int32_t> greedy;
};

Replies ask(const std::string& dir) {
  auto m = ChatModel::load(dir, [](const LlmConfig& c) {
    return DecoderPlacement::single(kernels::make_device({}), c.n_layers);
  });
  ChatPrompt p = m->prepare({test::tiny_picture("case_wide")},
                            test::slurp(test::data("minicpmv26-tiny/case_wide/question.txt")));
  auto vision = m->encode_images(p);
  Replies a;
  for (const auto& v : vision) a.vision.insert(a.vision.end(), v->data.begin(), v->data.end());
  const Decoder& dec = m->decoder();
  kernels::Tensor emb = m->embed_prompt(p, vision);
  auto cache = dec.new_cache(emb.rows());
  a.logits = prefill(dec, *cache, emb, true);
  kernels::Tensor gen = drop_pad_rows(emb, p.ids, 0);
  auto gc = dec.new_cache(gen.rows() + 8);
  SamplingParams g;
  g.greedy = true;
  a.greedy = generate(dec, *gc, prefill(dec, *gc, gen, false), 8, g, {});
  return a;
}

}  // namespace

TEST_CASE("MiniCPM-V 2.6 saved as its int4 release answers as the same weights in bf16", "[nf4][minicpmv]") {
  const test::StTensors src = test::read_safetensors(test::data("minicpmv26-tiny/model.safetensors"));
  Folder nf4("nf4-minicpmv"), twin("nf4-minicpmv-twin");

  test::StTensors q = src;
  size_t quantized = 0;
  for (const auto& [name, t] : src)
    if (quantized_in_release(name)) {
      test::quantize_nf4(q, name);
      ++quantized;
    }
  test::write_safetensors((nf4.dir / "model.safetensors").string(), q);
  nlohmann::json cfg = nlohmann::json::parse(test::slurp((nf4.dir / "config.json").string()));
  cfg["quantization_config"] = {{"quant_method", "bitsandbytes"}, {"load_in_4bit", true},
                                {"bnb_4bit_quant_type", "nf4"},
                                {"llm_int8_skip_modules", {"out_proj", "kv_proj", "lm_head"}}};
  std::ofstream(nf4.dir / "config.json", std::ios::trunc) << cfg.dump();

  // The twin: each NF4 weight as the engine dequantizes it (against the torch formula in
  // tests/checkpoint/test_nf4.cpp), written as plain bf16; every other tensor as it was.
  test::StTensors plain = src;
  {
    Checkpoint ck(nf4.str());
    REQUIRE(ck.nf4_weights().size() == quantized);
    CHECK(quantized == 2 * 5 + 2 * 7);   // tiny: 2 vision layers (q, k, v, fc1, fc2), 2 decoder layers
    for (const Nf4Weight* w : ck.nf4_weights()) {
      const TensorView& v = ck.get(w->name);
      REQUIRE(v.dtype == kernels::DType::BF16);
      plain[w->name].data.assign(reinterpret_cast<const char*>(v.data), v.bytes);
    }
    CHECK(plain.at("llm.model.layers.0.mlp.up_proj.weight").data != src.at("llm.model.layers.0.mlp.up_proj.weight").data);
    for (const char* kept : {"resampler.kv_proj.weight", "resampler.attn.out_proj.weight", "llm.lm_head.weight",
                             "vpm.encoder.layers.0.self_attn.out_proj.weight"})
      CHECK(ck.get(kept).dtype == kernels::DType::BF16);
  }
  test::write_safetensors((twin.dir / "model.safetensors").string(), plain);

  const Replies a = ask(nf4.str()), b = ask(twin.str());
  REQUIRE(!a.vision.empty());
  CHECK(a.vision == b.vision);
  CHECK(a.logits == b.logits);
  CHECK(a.greedy == b.greedy);
  CHECK(a.greedy.size() == 8);
  // And four bits a weight still answer near the unquantized model's transformers golden (0.20 measured).
  const double err = test::rel_error(a.logits, read_npy(test::data("minicpmv26-tiny/case_wide/golden_logits.npy")).as_float());
  INFO("logits relative error against the bf16 golden " << err);
  CHECK(err < 0.4);
}
