// A conversation's prompt as ChatModel builds it (pictures decoded and sliced, the turns
// through the checkpoint's template, placeholders where the pictures are) against the
// reference: the Jinja rendering of the same messages (tests/data/chat_templates/
// rendered.json, tools/render_chat_templates.mjs) with each marker replaced by its
// picture's placeholder, numbered in order of appearance as MiniCPM-V's processor does,
// and tokenized with its special tokens, as transformers does.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fstream>

#include "image/placeholder.h"
#include "ipc/error.h"
#include "kernels/device.h"
#include "model/chat_model.h"
#include "util/tiny_fixtures.h"

using namespace omni;

namespace {

CausalLm::PlaceFn one_cpu() {
  return [](const LlmConfig& c) { return DecoderPlacement::single(kernels::make_device({}), c.n_layers); };
}

nlohmann::json template_refs(const std::string& name) {
  std::ifstream in(test::data("chat_templates/rendered.json"));
  REQUIRE(in);
  const auto refs = nlohmann::json::parse(in);
  for (const auto& t : refs["templates"])
    if (t["name"] == name) return t;
  FAIL("no reference for " << name);
  return {};
}

std::vector<ipc::Turn> turns_of(const nlohmann::json& turns) {
  std::vector<ipc::Turn> out;
  for (const auto& t : turns) {
    ipc::Turn turn;
    turn.role = *ipc::role_from_name(t["role"].get<std::string>());
    for (const auto& p : t["content"])
      turn.parts.push_back(p.contains("image") ? ipc::TurnPart::of_image(p["image"].get<int32_t>())
                                               : ipc::TurnPart::of_text(p["text"].get<std::string>()));
    out.push_back(std::move(turn));
  }
  return out;
}

// Each case of `name` (with its pictures: case_small, then case_wide) through the model.
void check_model(const std::string& name, const std::string& model_dir) {
  auto model = ChatModel::load(test::data(model_dir), one_cpu());
  const auto pre = image::load_preprocessor_config(test::data(model_dir + "/preprocessor_config.json"));
  const std::vector<ImageInput> pictures = {test::tiny_picture("case_small"), test::tiny_picture("case_wide")};
  const auto refs = template_refs(name);
  const std::string marker = kImageMarker;
  for (const auto& c : refs["cases"]) {
    // MiniCPM-V's chat() renders with enable_thinking=False unless asked.
    ipc::PromptOptions opt;
    if (!c["enable_thinking"].is_null()) opt.enable_thinking = c["enable_thinking"].get<bool>();
    const auto turns = turns_of(c["turns"]);
    size_t n_pictures = 0;
    for (const auto& t : turns)
      for (const auto& p : t.parts) n_pictures += p.is_image() ? 1 : 0;
    const std::vector<ImageInput> used(pictures.begin(), pictures.begin() + long(n_pictures));
    INFO(name << ": " << c["name"].get<std::string>() << " thinking " << c["enable_thinking"].dump());
    const ChatPrompt p = model->prepare_prompt(model->prepare_images(used, opt), turns, opt);
    std::string expect = c["rendered"];
    for (size_t k = 0, at = 0; k < p.images.size(); ++k) {
      at = expect.find(marker, at);
      REQUIRE(at != std::string::npos);
      const std::string ph = image::image_placeholder(int(k), p.images[k].sliced, model->query_num(), pre.use_image_id,
                                                      pre.tokens);
      expect.replace(at, marker.size(), ph);
      at += ph.size();
    }
    CHECK(p.text == expect);
    CHECK(p.ids == model->tokenizer().encode(expect));
    size_t pieces = 0;
    for (const auto& im : p.images) pieces += im.sliced.pieces.size();
    CHECK(p.bounds.size() == pieces);
  }
}

}  // namespace

TEST_CASE("MiniCPM-V 2.6 conversation prompts equal its template with the processor's placeholders") {
  check_model("minicpmv26", "minicpmv26-tiny");
}

TEST_CASE("MiniCPM-V 4.5 conversation prompts equal its template with thinking off and on") {
  check_model("minicpmv45", "minicpmv45-tiny");
}

TEST_CASE("the one-question prompt is the one-user-turn conversation") {
  auto model = ChatModel::load(test::data("minicpmv26-tiny"), one_cpu());
  const auto pic = test::tiny_picture("case_small");
  const ChatPrompt a = model->prepare({pic}, "What is it?");
  const ChatPrompt b = model->prepare_prompt(model->prepare_images({pic}), ipc::single_turn(1, "What is it?"));
  CHECK(a.ids == b.ids);
  // And it is the golden prompt of the 2.6 reference.
  const auto g = nlohmann::json::parse(test::slurp(test::data("minicpmv26-tiny/case_small/golden_prompt.json")));
  const std::string q = test::slurp(test::data("minicpmv26-tiny/case_small/question.txt"));
  CHECK(model->prepare({pic}, q).ids == g["ids"].get<std::vector<int32_t>>());
}

TEST_CASE("per-request picture settings change the slices and the image ids") {
  auto model = ChatModel::load(test::data("minicpmv26-tiny"), one_cpu());
  const auto wide = test::tiny_picture("case_wide");
  const auto turns = ipc::single_turn(1, "Describe.");
  const ChatPrompt sliced = model->prepare_prompt(model->prepare_images({wide}), turns);
  ipc::PromptOptions one;
  one.max_slice_nums = 1;
  one.use_image_id = false;
  const ChatPrompt whole = model->prepare_prompt(model->prepare_images({wide}, one), turns, one);
  CHECK(sliced.images[0].sliced.pieces.size() == 7);   // 3x2 grid + overview
  CHECK(whole.images[0].sliced.pieces.size() == 1);
  CHECK(sliced.text.find("<image_id>0</image_id>") != std::string::npos);
  CHECK(whole.text.find("<image_id>") == std::string::npos);
  CHECK(sliced.images[0].cache_key != whole.images[0].cache_key);   // cached apart
}

TEST_CASE("a bad conversation is refused with bad_message naming the place") {
  auto model = ChatModel::load(test::data("minicpmv26-tiny"), one_cpu());
  const auto pic = test::tiny_picture("case_small");
  auto code_of = [&](const std::vector<ipc::Turn>& turns, size_t n_images) {
    std::vector<ImageInput> pics(n_images, pic);
    try {
      model->prepare_prompt(model->prepare_images(pics), turns);
    } catch (const ipc::IpcError& e) {
      return std::string(ipc::error_code_name(e.code())) + " " + e.what();
    }
    return std::string("accepted");
  };
  using ipc::Role;
  using ipc::TurnPart;
  CHECK_THAT(code_of({}, 0), Catch::Matchers::StartsWith("bad_message messages"));
  CHECK_THAT(code_of({{Role::user, {TurnPart::of_text("a")}}, {Role::system, {TurnPart::of_text("s")}}}, 0),
             Catch::Matchers::Contains("messages[1]: a system turn may only come first"));
  CHECK_THAT(code_of({{Role::user, {TurnPart::of_image(1)}}}, 1), Catch::Matchers::Contains("messages[0].content[0]"));
  CHECK_THAT(code_of({{Role::user, {TurnPart::of_image(0), TurnPart::of_image(0)}}}, 1),
             Catch::Matchers::Contains("used twice"));
  CHECK_THAT(code_of({{Role::user, {TurnPart::of_text("no picture")}}}, 1),
             Catch::Matchers::Contains("images[0]: no message part refers to it"));
  CHECK_THAT(code_of({{Role::user, {}}}, 0), Catch::Matchers::Contains("messages[0].content: empty"));
}
