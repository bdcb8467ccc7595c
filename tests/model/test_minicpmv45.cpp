// MiniCPM-V 4.5 at toy size (tests/data/minicpmv45-tiny, written by
// tools/make_minicpmv45_tiny.py): 2.6's vision tower and resampler with a Qwen3 language
// model and a Qwen3-style template. No transformers reference exists for it, so each part
// is held to one that does: the picture path to the 2.6 goldens (same vpm/resampler
// weights), the language model to the same weights loaded as a plain Qwen3 checkpoint
// (Qwen3 itself is held to its golden in test_decoder_goldens), the prompt to 4.5's
// template as chat() renders it (enable_thinking=False).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kernels/device.h"
#include "model/chat_model.h"
#include "util/tiny_fixtures.h"
#include "util/npy.h"

using namespace omni;

namespace {

CausalLm::PlaceFn one_cpu() {
  return [](const LlmConfig& c) { return DecoderPlacement::single(kernels::make_device({}), c.n_layers); };
}

using test::slurp;
using test::tiny_picture;

// The llm.* tensors of `dir` as a plain Qwen3 checkpoint in `out` (prefix dropped).
void write_llm_only(const std::string& dir, const std::filesystem::path& out) {
  const std::string file = slurp(dir + "/model.safetensors");
  uint64_t n = 0;
  std::memcpy(&n, file.data(), 8);
  const nlohmann::json header = nlohmann::json::parse(file.substr(8, n));
  nlohmann::json h;
  std::string body;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key().rfind("llm.", 0) != 0) continue;
    const uint64_t a = it.value()["data_offsets"][0], b = it.value()["data_offsets"][1];
    h[it.key().substr(4)] = {{"dtype", it.value()["dtype"]}, {"shape", it.value()["shape"]},
                             {"data_offsets", {body.size(), body.size() + (b - a)}}};
    body.append(file, 8 + n + a, b - a);
  }
  const std::string hs = h.dump();
  const uint64_t hl = hs.size();
  std::filesystem::create_directories(out);
  std::ofstream f(out / "model.safetensors", std::ios::binary);
  f.write(reinterpret_cast<const char*>(&hl), 8);
  f << hs << body;
  nlohmann::json cfg = nlohmann::json::parse(slurp(dir + "/config.json"));
  for (const char* k : {"vision_config", "slice_config", "query_num", "version", "batch_3d_resampler"}) cfg.erase(k);
  cfg["model_type"] = "qwen3";
  cfg["torch_dtype"] = "float32";   // float32 RoPE frequencies, as MiniCPM-V's own LLM keeps them
  std::ofstream(out / "config.json") << cfg.dump();
}

}  // namespace

TEST_CASE("MiniCPM-V 4.5 loads with a Qwen3 language model and 4.5's chat defaults", "[minicpmv45]") {
  auto m = ChatModel::load(test::data("minicpmv45-tiny"), one_cpu());
  CHECK(m->config().arch == "qwen3");
  CHECK(m->config().qk_norm);
  CHECK(m->config().head_dim == 32);   // explicit, not hidden / heads
  CHECK_FALSE(m->config().qkv_bias);
  CHECK(m->has_vision());
  CHECK(m->default_sampling().repetition_penalty == Approx(1.03f));
  CHECK(m->default_sampling().top_p == Approx(0.8f));
}

TEST_CASE("MiniCPM-V 4.5 prompt: no default system turn, an empty think block after the generation prompt",
          "[minicpmv45]") {
  auto m45 = ChatModel::load(test::data("minicpmv45-tiny"), one_cpu());
  auto m26 = ChatModel::load(test::data("minicpmv26-tiny"), one_cpu());
  ChatPrompt p45 = m45->prepare({tiny_picture("case_wide")}, "What is it?");
  ChatPrompt p26 = m26->prepare({tiny_picture("case_wide")}, "What is it?");
  // 2.6's prompt is the default system turn + the same user turn (the placeholder is shared).
  const std::string sys = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n";
  REQUIRE(p26.text.rfind(sys, 0) == 0);
  const std::string user_turn = p26.text.substr(sys.size());
  CHECK(p45.text == user_turn + "<think>\n\n</think>\n\n");
  CHECK(p45.text.rfind("<|im_start|>user\n<image_id>0</image_id><image>", 0) == 0);
  REQUIRE(p45.bounds.size() == p26.bounds.size());   // one run of <unk> per piece, as in 2.6
  for (const auto& [a, b] : p45.bounds) CHECK(b - a == m45->query_num());
  // Thinking asked for: 4.5's template opens the block instead.
  ChatModelOptions think;
  think.enable_thinking = true;
  auto thinking = ChatModel::load(test::data("minicpmv45-tiny"), one_cpu(), {}, think);
  CHECK(thinking->prepare({}, "Why?").text == "<|im_start|>user\nWhy?<|im_end|>\n<|im_start|>assistant\n<think>\n");
}

TEST_CASE("MiniCPM-V 4.5 pictures go through 2.6's vision path: the 2.6 references hold", "[minicpmv45]") {
  auto m = ChatModel::load(test::data("minicpmv45-tiny"), one_cpu());
  for (const std::string c : {"case_small", "case_wide"}) {
    ChatPrompt p = m->prepare({tiny_picture(c)}, "Describe it.");
    auto vision = m->encode_images(p);
    const double ev = test::rel_error(vision.at(0)->data,
                                      read_npy(test::data("minicpmv26-tiny/" + c + "/golden_vision_embeds.npy")).as_float());
    INFO(c << " vision_embeds relative error " << ev);
    CHECK(ev <= 1e-5);
  }
}

TEST_CASE("MiniCPM-V 4.5's language model computes what its weights compute as a plain Qwen3", "[minicpmv45]") {
  const std::string dir = test::data("minicpmv45-tiny");
  const auto plain_dir = std::filesystem::temp_directory_path() / ("omni-qwen3-of-45-" + std::to_string(::getpid()));
  write_llm_only(dir, plain_dir);
  auto m = ChatModel::load(dir, one_cpu());
  auto plain = CausalLm::load(plain_dir.string(), one_cpu());
  ChatPrompt p = m->prepare({tiny_picture("case_small")}, "What colour is the square?");
  kernels::Tensor emb = m->embed_prompt(p, m->encode_images(p));
  auto c1 = m->decoder().new_cache(emb.rows());
  auto c2 = plain->decoder().new_cache(emb.rows());
  const std::vector<float> got = prefill(m->decoder(), *c1, emb, true);
  const std::vector<float> want = prefill(plain->decoder(), *c2, emb, true);
  std::filesystem::remove_all(plain_dir);
  REQUIRE(got.size() == want.size());
  CHECK(test::rel_error(got, want) <= 1e-6);
}

TEST_CASE("MiniCPM-V versions other than 2.6 and 4.5 are refused by name", "[minicpmv45][errors]") {
  const auto d = std::filesystem::temp_directory_path() / ("omni-minicpmv-v3-" + std::to_string(::getpid()));
  std::filesystem::create_directories(d);
  for (const char* f : {"model.safetensors", "tokenizer.json", "tokenizer_config.json", "preprocessor_config.json"})
    std::filesystem::copy_file(test::data("minicpmv45-tiny/") + f, d / f);
  nlohmann::json cfg = nlohmann::json::parse(slurp(test::data("minicpmv45-tiny/config.json")));
  cfg["version"] = 4.0;
  std::ofstream(d / "config.json") << cfg.dump();
  CHECK_THROWS_WITH(ChatModel::load(d.string(), one_cpu()),
                    Catch::Contains("config.json") && Catch::Contains("version 4.0") && Catch::Contains("2.6, 4.5"));
  std::filesystem::remove_all(d);
}
