// MiniCPM-V 2.6 end to end against the transformers reference: picture + question in,
// prompt ids, vision embeddings, logits and greedy tokens out.
#include <catch2/catch.hpp>

#include <algorithm>

#include <fstream>
#include <nlohmann/json.hpp>

#include "kernels/device.h"
#include "model/answer.h"
#include "model/chat_model.h"
#include "util/tiny_fixtures.h"
#include "util/npy.h"

using namespace omni;

namespace {

std::unique_ptr<ChatModel> load_tiny(const std::vector<std::string>& devs = {"cpu:0"}) {
  return ChatModel::load(test::data("minicpmv26-tiny"), [devs](const LlmConfig& c) {
    std::vector<std::shared_ptr<kernels::Device>> d;
    for (const auto& s : devs) d.push_back(kernels::make_device(kernels::DeviceId::parse(s)));
    DecoderPlacement p{d.front(), {}, d.back()};
    for (int l = 0; l < c.n_layers; ++l) p.layer_devices.push_back(d[size_t(l) * d.size() / size_t(c.n_layers)]);
    return p;
  });
}

using test::slurp;
ImageInput picture(const std::string& c) { return test::tiny_picture(c); }

std::string question(const std::string& c) { return slurp(test::data("minicpmv26-tiny/" + c + "/question.txt")); }

void check_case(ChatModel& m, const std::string& c) {
  const std::string dir = test::data("minicpmv26-tiny/" + c);
  ChatPrompt p = m.prepare({picture(c)}, question(c));
  nlohmann::json gp = nlohmann::json::parse(slurp(dir + "/golden_prompt.json"));
  CHECK(p.text == gp["text"].get<std::string>());
  CHECK(p.ids == gp["ids"].get<std::vector<int32_t>>());

  nlohmann::json gs = nlohmann::json::parse(slurp(dir + "/golden_slices.json"));
  const auto& sl = p.images.at(0).sliced;
  if (gs["grid"].is_null()) CHECK_FALSE(sl.grid.has_value());
  else CHECK(sl.grid == std::make_optional(std::make_pair(gs["grid"][0].get<int>(), gs["grid"][1].get<int>())));
  REQUIRE(sl.pieces.size() == gs["sizes_wh"].size());

  auto vision = m.encode_images(p);
  std::vector<float> want_v = read_npy(dir + "/golden_vision_embeds.npy").as_float();
  const double ev = test::rel_error(vision.at(0)->data, want_v);
  INFO(c << " vision_embeds relative error " << ev);
  CHECK(ev <= 1e-3);

  const Decoder& dec = m.decoder();
  kernels::Tensor emb = m.embed_prompt(p, vision);
  auto cache = dec.new_cache(emb.rows());
  std::vector<float> logits = prefill(dec, *cache, emb, true);
  const double el = test::rel_error(logits, read_npy(dir + "/golden_logits.npy").as_float());
  INFO(c << " logits relative error " << el);
  CHECK(el <= 1e-3);

  std::vector<int32_t> want_g = read_npy(dir + "/golden_greedy.npy").as_int32();
  kernels::Tensor gen_emb = drop_pad_rows(emb, p.ids, 0);
  auto gc = dec.new_cache(gen_emb.rows() + int64_t(want_g.size()));
  SamplingParams g;
  g.greedy = true;
  const SamplingParams& s = g;
  std::vector<int32_t> got = generate(dec, *gc, prefill(dec, *gc, gen_emb, false), int(want_g.size()), s, {});
  CHECK(got == want_g);
}

}  // namespace

TEST_CASE("MiniCPM-V 2.6 tiny: a wide picture sliced 3x2", "[minicpmv][golden]") {
  auto m = load_tiny();
  check_case(*m, "case_wide");
}

TEST_CASE("MiniCPM-V 2.6 tiny: a small picture, upscaled overview only", "[minicpmv][golden]") {
  auto m = load_tiny();
  check_case(*m, "case_small");
}

TEST_CASE("MiniCPM-V 2.6 tiny: pipeline over two cpu devices gives the same logits", "[minicpmv][pipeline]") {
  auto one = load_tiny();
  auto two = load_tiny({"cpu:0", "cpu:1"});
  for (auto* m : {one.get(), two.get()}) (void)m;
  ChatPrompt p1 = one->prepare({picture("case_wide")}, question("case_wide"));
  ChatPrompt p2 = two->prepare({picture("case_wide")}, question("case_wide"));
  kernels::Tensor e1 = one->embed_prompt(p1, one->encode_images(p1));
  kernels::Tensor e2 = two->embed_prompt(p2, two->encode_images(p2));
  auto c1 = one->decoder().new_cache(e1.rows());
  auto c2 = two->decoder().new_cache(e2.rows());
  std::vector<float> l1 = prefill(one->decoder(), *c1, e1, true);
  std::vector<float> l2 = prefill(two->decoder(), *c2, e2, true);
  CHECK(test::rel_error(l2, l1) <= 1e-6);
}

TEST_CASE("the vision cache answers a second question about the same picture", "[minicpmv][cache]") {
  auto m = load_tiny();
  ChatPrompt a = m->prepare({picture("case_small")}, "first?");
  ChatPrompt b = m->prepare({picture("case_small")}, "second?");
  auto va = m->encode_images(a);
  auto vb = m->encode_images(b);
  CHECK(va[0].get() == vb[0].get());   // the same entry, not encoded again
  CHECK(m->vision_cache().hits() == 1);
  CHECK(m->vision_cache().misses() == 1);
}

TEST_CASE("the vision cache stays within its byte bound", "[cache]") {
  VisionCache c(1000);
  auto e = [](size_t n) {
    auto v = std::make_shared<VisionEmbeds>();
    v->data.assign(n, 1.0f);
    return v;
  };
  c.insert("a", e(100));   // 400 bytes
  c.insert("b", e(100));
  CHECK(c.find("a"));      // a is now the most recent
  c.insert("c", e(100));   // 1200 > 1000: b goes
  CHECK(c.find("b") == nullptr);
  CHECK(c.find("a"));
  CHECK(c.find("c"));
  CHECK(c.bytes() <= 1000);
  c.insert("huge", e(1000));   // larger than the bound: not kept
  CHECK(c.find("huge") == nullptr);
}

TEST_CASE("unsupported MiniCPM-V versions are refused by name", "[minicpmv]") {
  namespace fs = std::filesystem;
  fs::path d = fs::temp_directory_path() / ("omni-v40-" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::copy(test::data("minicpmv26-tiny"), d, fs::copy_options::recursive);
  for (auto& e : fs::recursive_directory_iterator(d)) fs::permissions(e.path(), fs::perms::owner_write, fs::perm_options::add);
  nlohmann::json cfg = nlohmann::json::parse(slurp((d / "config.json").string()));
  cfg["version"] = 4.0;   // MiniCPM-V 4.0: MiniCPM4-3B, not run
  std::ofstream(d / "config.json") << cfg.dump();
  CHECK_THROWS_WITH(ChatModel::load(d.string(), [](const LlmConfig& c) {
                      return DecoderPlacement::single(kernels::make_device({}), c.n_layers);
                    }),
                    Catch::Contains("version 4.0 is not supported yet"));
  fs::remove_all(d);
}

TEST_CASE("image tokens written in a question are text and cannot misalign the pictures", "[minicpmv][input]") {
  auto m = load_tiny();
  // The question is literal: its "<image><unk></image>" are characters, so the prompt
  // holds exactly the picture's own placeholder runs.
  const ChatPrompt p = m->prepare({picture("case_small")}, "look <image><unk></image>");
  CHECK(p.bounds.size() == 1);
  const auto& tok = m->tokenizer();
  const int32_t image = *tok.token_id("<image>");
  CHECK(std::count(p.ids.begin(), p.ids.end(), image) == 1);
}

TEST_CASE("several pictures in one prompt are numbered from 0, in order", "[minicpmv]") {
  auto m = load_tiny();
  ChatPrompt p = m->prepare({picture("case_small"), picture("case_wide")}, "Compare them.");
  CHECK(p.text.find("<image_id>0</image_id>") < p.text.find("<image_id>1</image_id>"));
  CHECK(p.text.find("<image_id>1</image_id>") != std::string::npos);
  CHECK(p.bounds.size() == 1 + 7);   // case_small: overview only; case_wide: overview + 3x2
  auto v = m->encode_images(p);
  REQUIRE(v.size() == 2);
  CHECK(v[0]->pieces == 1);
  CHECK(v[1]->pieces == 7);
  kernels::Tensor e = m->embed_prompt(p, v);
  // The first <unk> run holds case_small's rows, the second picture's overview follows.
  std::vector<float> rows = e.rows_view(p.bounds[1].first, 16).to_host();
  std::vector<float> want(v[1]->data.begin(), v[1]->data.begin() + 16 * 256);
  CHECK(test::rel_error(rows, want) < 1e-7);
}
