// MiniCPM-Llama3-V 2.5 at toy size (tests/data/minicpmv25-tiny, tools/make_minicpmv25_tiny.py)
// against a float64 PyTorch reference written from the released 2.5 code
// (tools/minicpmv25_reference.py): prompt text and ids, slices, logits, greedy tokens, for a
// picture that slices (its slices shorter than the overview, so the strip padding of 2.5's
// vision call shows) and one that does not (a "!" in its question: id 0, not padding in 2.5).
// Then the refusals of checkpoints the engine cannot run.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kernels/device.h"
#include "model/answer.h"
#include "model/chat_model.h"
#include "model/minicpmv_version.h"
#include "util/npy.h"
#include "util/tiny_fixtures.h"

using namespace omni;
namespace fs = std::filesystem;

namespace {

const std::string kDir = "minicpmv25-tiny";

CausalLm::PlaceFn one_cpu() {
  return [](const LlmConfig& c) { return DecoderPlacement::single(kernels::make_device({}), c.n_layers); };
}

std::unique_ptr<ChatModel> load_tiny() { return ChatModel::load(test::data(kDir), one_cpu()); }

ImageInput picture(const std::string& c) {
  const std::string b = test::slurp(test::data(kDir + "/" + c + "/image.png"));
  return ImageInput::from_bytes(c, std::vector<uint8_t>(b.begin(), b.end()));
}

std::string question(const std::string& c) { return test::slurp(test::data(kDir + "/" + c + "/question.txt")); }

void check_case(ChatModel& m, const std::string& c) {
  const std::string dir = test::data(kDir + "/" + c);
  ChatPrompt p = m.prepare({picture(c)}, question(c));
  const nlohmann::json gp = nlohmann::json::parse(test::slurp(dir + "/golden_prompt.json"));
  CHECK(p.text == gp["text"].get<std::string>());
  REQUIRE(p.ids == gp["ids"].get<std::vector<int32_t>>());

  const nlohmann::json gs = nlohmann::json::parse(test::slurp(dir + "/golden_slices.json"));
  const auto& sl = p.images.at(0).sliced;
  if (gs["grid"].is_null()) CHECK_FALSE(sl.grid.has_value());
  else CHECK(sl.grid == std::make_optional(std::make_pair(gs["grid"][0].get<int>(), gs["grid"][1].get<int>())));
  REQUIRE(sl.pieces.size() == gs["sizes_wh"].size());
  for (size_t i = 0; i < sl.pieces.size(); ++i) {
    CHECK(sl.pieces[i].width == gs["sizes_wh"][i][0].get<int>());
    CHECK(sl.pieces[i].height == gs["sizes_wh"][i][1].get<int>());
  }

  const Decoder& dec = m.decoder();
  auto vision = m.encode_images(p);
  kernels::Tensor emb = m.embed_prompt(p, vision);
  auto cache = dec.new_cache(emb.rows());
  const std::vector<float> logits = prefill(dec, *cache, emb, true);
  const std::vector<int32_t> pos = read_npy(dir + "/golden_logit_positions.npy").as_int32();
  const int64_t V = dec.config().vocab;
  std::vector<float> got;
  for (int32_t t : pos) got.insert(got.end(), logits.begin() + t * V, logits.begin() + (t + 1) * V);
  const double el = test::rel_error(got, read_npy(dir + "/golden_logits.npy").as_float());
  INFO(c << " logits relative error " << el);
  CHECK(el <= 1e-4);

  // Generation as the scheduler runs it: the model's pad rows dropped (none in 2.5), one
  // prefill whose last logits are the reference's, then greedy through the KV cache.
  const std::vector<int32_t> want_g = read_npy(dir + "/golden_greedy.npy").as_int32();
  kernels::Tensor gen_emb = drop_pad_rows(emb, p.ids, m.pad_id());
  auto gc = dec.new_cache(gen_emb.rows() + int64_t(want_g.size()));
  std::vector<float> last = prefill(dec, *gc, gen_emb, false);
  REQUIRE(pos.back() == int32_t(p.ids.size()) - 1);
  const std::vector<float> want_all = read_npy(dir + "/golden_logits.npy").as_float();
  const double e_last = test::rel_error(last, std::vector<float>(want_all.end() - V, want_all.end()));
  INFO(c << " last-row logits of the generation prefill, relative error " << e_last);
  CHECK(e_last <= 1e-4);
  SamplingParams g;
  g.greedy = true;
  const SamplingParams& s = g;
  CHECK(generate(dec, *gc, std::move(last), int(want_g.size()), s, {}) == want_g);
}

// A copy of the tiny checkpoint in a fresh folder, config.json edited by `edit`.
struct Copy {
  fs::path dir;
  explicit Copy(const std::string& tag, const std::function<void(nlohmann::json&)>& edit = {}) {
    dir = fs::temp_directory_path() / ("omni-v25-" + tag + "-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::copy(test::data(kDir), dir, fs::copy_options::recursive);
    for (auto& e : fs::recursive_directory_iterator(dir))
      fs::permissions(e.path(), fs::perms::owner_write, fs::perm_options::add);
    if (!edit) return;
    nlohmann::json cfg = nlohmann::json::parse(test::slurp((dir / "config.json").string()));
    edit(cfg);
    std::ofstream(dir / "config.json") << cfg.dump();
  }
  ~Copy() { fs::remove_all(dir); }
};

}  // namespace

TEST_CASE("MiniCPM-Llama3-V 2.5 loads with its string version, a Llama-3 language model and 96 queries",
          "[minicpmv25]") {
  auto m = load_tiny();
  CHECK(m->config().arch == "llama");
  CHECK_FALSE(m->config().qkv_bias);
  CHECK(m->has_vision());
  CHECK(m->query_num() == 96);
  CHECK(m->default_sampling().repetition_penalty == Approx(1.05f));
  CHECK(m->pad_id() == -1);   // generate() without a mask: no prompt row is padding
  const auto eot = m->tokenizer().token_id("<|eot_id|>");
  REQUIRE(eot);
  const auto stops = m->stop_ids();
  CHECK(std::find(stops.begin(), stops.end(), *eot) != stops.end());
}

TEST_CASE("MiniCPM-Llama3-V 2.5 version is read as a string or a number", "[minicpmv25]") {
  CHECK(MiniCpmvVersion::from_config({{"model_type", "minicpmv"}, {"version", "2.5"}}, "c").name == "2.5");
  CHECK(MiniCpmvVersion::from_config({{"model_type", "minicpmv"}, {"version", 2.5}}, "c").name == "2.5");
  CHECK(MiniCpmvVersion::from_config({{"model_type", "minicpmv"}, {"version", "2.6"}}, "c").llm_arch == "qwen2");
  const MiniCpmvVersion v = MiniCpmvVersion::from_config({{"model_type", "minicpmv"}, {"version", "2.5"}}, "c");
  CHECK(v.placeholders == image::PlaceholderSchema::slices_in_one_block);
  CHECK_FALSE(v.image_ids);
  CHECK(v.vision_input == VisionInput::padded_strip);
  CHECK_FALSE(v.video_supported);
}

TEST_CASE("MiniCPM-Llama3-V 2.5 tiny: a wide picture sliced 3x1", "[minicpmv25][golden]") {
  auto m = load_tiny();
  check_case(*m, "case_wide");
  // The old layout: the overview, then one <slice> block of <image> runs; no image ids.
  const ChatPrompt p = m->prepare({picture("case_wide")}, question("case_wide"));
  auto count = [&](const std::string& s) {
    size_t n = 0;
    for (size_t at = p.text.find(s); at != std::string::npos; at = p.text.find(s, at + 1)) ++n;
    return n;
  };
  CHECK(count("<slice>") == 1);
  CHECK(count("</slice>") == 1);
  CHECK(count("<image>") == 4);
  CHECK(count("<image_id>") == 0);
  CHECK(p.bounds.size() == 4);
}

TEST_CASE("MiniCPM-Llama3-V 2.5 tiny: a small picture, upscaled, not sliced", "[minicpmv25][golden]") {
  auto m = load_tiny();
  check_case(*m, "case_small");
  // Its question ends in "!", id 0: 2.6's pad id, an ordinary prompt row in 2.5.
  const ChatPrompt p = m->prepare({picture("case_small")}, question("case_small"));
  CHECK(std::count(p.ids.begin(), p.ids.end(), 0) == 1);
}

TEST_CASE("MiniCPM-Llama3-V 2.5: a picture's rows depend on the longest piece of the request", "[minicpmv25]") {
  auto m = load_tiny();
  // 400x40 has an overview longer than case_small's 24 patches: with it in the request,
  // case_small's piece runs padded to that length (2.5's batch), so its rows change, and so
  // does its identity for the caches.
  std::vector<uint8_t> rgb(size_t(400) * 40 * 3);
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = uint8_t((i * 37) % 251);
  ImageInput wide = ImageInput::from_bytes("wide", rgb);
  wide.rgb_width = 400;
  wide.rgb_height = 40;
  const ChatPrompt alone = m->prepare({picture("case_small")}, "Describe it!");
  const ChatPrompt both = m->prepare({picture("case_small"), wide}, "Describe it!");
  int longest = 0;
  for (const auto& piece : both.images.at(1).sliced.pieces) longest = std::max(longest, piece.width * piece.height / 196);
  REQUIRE(longest > 24);
  CHECK(alone.images.at(0).cache_key != both.images.at(0).cache_key);
  const auto a = m->encode_images(alone), b = m->encode_images(both);
  CHECK(test::rel_error(a.at(0)->data, b.at(0)->data) > 1e-3);
  // The same request again is served from the vision cache, unchanged.
  CHECK(test::rel_error(m->encode_images(alone).at(0)->data, a.at(0)->data) == 0);
}

TEST_CASE("MiniCPM-Llama3-V 2.5: no image ids even when asked, and no video", "[minicpmv25]") {
  auto m = load_tiny();
  ipc::PromptOptions o;
  o.use_image_id = true;
  CHECK(m->prepare({picture("case_small")}, "Hi", o).text.find("<image_id>") == std::string::npos);
  ImageInput v = picture("case_small");
  v.video = true;
  CHECK_THROWS_WITH(m->prepare_images({v}), Catch::Contains("has no video input"));
}

TEST_CASE("MiniCPM-Llama3-V 2.5 checkpoints the engine cannot run are refused, naming the field or tensor",
          "[minicpmv25]") {
  SECTION("a version it does not run") {
    Copy c("ver", [](nlohmann::json& j) { j["version"] = "2.4"; });
    CHECK_THROWS_WITH(ChatModel::load(c.dir.string(), one_cpu()),
                      Catch::Contains("config.json") && Catch::Contains("version \"2.4\" is not supported yet") &&
                          Catch::Contains("supported: 2.5, 2.6, 4.5"));
  }
  SECTION("a version that is no number") {
    Copy c("nan", [](nlohmann::json& j) { j["version"] = "2.5b"; });
    CHECK_THROWS_WITH(ChatModel::load(c.dir.string(), one_cpu()), Catch::Contains("'version'"));
  }
  SECTION("no version") {
    Copy c("nover", [](nlohmann::json& j) { j.erase("version"); });
    CHECK_THROWS_WITH(ChatModel::load(c.dir.string(), one_cpu()), Catch::Contains("'version'"));
  }
  SECTION("a model_type it does not run") {
    Copy c("type", [](nlohmann::json& j) { j["model_type"] = "minicpmv4_6"; });
    CHECK_THROWS_WITH(ChatModel::load(c.dir.string(), one_cpu()), Catch::Contains("model_type 'minicpmv4_6'"));
  }
  SECTION("query_num that the preprocessor disagrees with") {
    Copy c("query", [](nlohmann::json& j) { j["query_num"] = 64; });
    CHECK_THROWS_WITH(ChatModel::load(c.dir.string(), one_cpu()),
                      Catch::Contains("query_num 64") && Catch::Contains("image_feature_size 96"));
  }
  SECTION("a tensor that is missing") {
    Copy c("tensor");
    const fs::path st = c.dir / "model.safetensors";
    std::string bytes = test::slurp(st.string());
    const std::string name = "\"resampler.query\"", renamed = "\"resampler.qvery\"";   // same length: offsets hold
    const size_t at = bytes.find(name);
    REQUIRE(at != std::string::npos);
    bytes.replace(at, name.size(), renamed);
    std::ofstream(st, std::ios::binary | std::ios::trunc) << bytes;
    CHECK_THROWS_WITH(ChatModel::load(c.dir.string(), one_cpu()), Catch::Contains("'resampler.query'"));
  }
}
