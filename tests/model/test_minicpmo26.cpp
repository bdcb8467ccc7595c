// MiniCPM-o 2.6 for pictures and text (tests/data/minicpmo26-tiny, written by
// tools/make_minicpmo26_tiny.py in the release's layout, audio and speech tensors included;
// goldens from tools/minicpmo26_reference.py, a float64 PyTorch reference written from the
// released modeling code): the prompt ids, vision rows, logits and greedy tokens equal the
// reference; the apm.*, audio_projection_layer.* and tts.* tensors are named in one log line
// and never loaded; what the engine cannot run is refused naming the field or tensor.
#include <catch2/catch.hpp>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "kernels/device.h"
#include "model/answer.h"
#include "model/chat_model.h"
#include "model/omni_parts.h"
#include "util/npy.h"
#include "util/tiny_fixtures.h"

using namespace omni;
namespace fs = std::filesystem;

namespace {

const std::string kTiny = "minicpmo26-tiny";

CausalLm::PlaceFn one_cpu() {
  return [](const LlmConfig& c) { return DecoderPlacement::single(kernels::make_device({}), c.n_layers); };
}

std::unique_ptr<ChatModel> load_tiny(ProgressFn progress = {}) {
  return ChatModel::load(test::data(kTiny), one_cpu(), std::move(progress));
}

ImageInput picture() {
  const std::string b = test::slurp(test::data(kTiny + "/case_small/image.png"));
  return ImageInput::from_bytes("case_small", std::vector<uint8_t>(b.begin(), b.end()));
}

std::string question() { return test::slurp(test::data(kTiny + "/case_small/question.txt")); }

// The safetensors header of the tiny checkpoint: name -> (dtype, shape, offsets).
nlohmann::json header_of(const std::string& file) {
  const std::string bytes = test::slurp(file);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  nlohmann::json h = nlohmann::json::parse(bytes.substr(8, n));
  h.erase("__metadata__");
  return h;
}

bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

// A copy of the tiny checkpoint in a temporary folder, its config and tensors editable.
struct TinyCopy {
  fs::path dir;
  explicit TinyCopy(const std::string& tag)
      : dir(fs::temp_directory_path() / ("omni-o26-" + tag + "-" + std::to_string(::getpid()))) {
    fs::remove_all(dir);
    fs::copy(test::data(kTiny), dir, fs::copy_options::recursive);
    for (auto& e : fs::recursive_directory_iterator(dir))
      fs::permissions(e.path(), fs::perms::owner_write, fs::perm_options::add);
  }
  ~TinyCopy() { fs::remove_all(dir); }
  void edit_config(const std::function<void(nlohmann::json&)>& f) const {
    nlohmann::json cfg = nlohmann::json::parse(test::slurp((dir / "config.json").string()));
    f(cfg);
    std::ofstream(dir / "config.json") << cfg.dump();
  }
  // Rewrites model.safetensors without the tensor `name`.
  void drop_tensor(const std::string& name) const {
    const std::string file = test::slurp((dir / "model.safetensors").string());
    uint64_t n = 0;
    std::memcpy(&n, file.data(), 8);
    const nlohmann::json header = nlohmann::json::parse(file.substr(8, n));
    nlohmann::json h = nlohmann::json::object();
    std::string body;
    for (auto it = header.begin(); it != header.end(); ++it) {
      if (it.key() == name || it.key() == "__metadata__") continue;
      const uint64_t a = it.value()["data_offsets"][0], b = it.value()["data_offsets"][1];
      h[it.key()] = {{"dtype", it.value()["dtype"]}, {"shape", it.value()["shape"]},
                     {"data_offsets", {body.size(), body.size() + (b - a)}}};
      body.append(file, 8 + n + a, b - a);
    }
    const std::string hs = h.dump();
    const uint64_t hl = hs.size();
    std::ofstream f(dir / "model.safetensors", std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(&hl), 8);
    f << hs << body;
  }
  std::unique_ptr<ChatModel> load() const { return ChatModel::load(dir.string(), one_cpu()); }
};

// Lines the default logger writes at info level while `f` runs.
std::string log_of(const std::function<void()>& f) {
  std::ostringstream out;
  auto previous = spdlog::default_logger();
  const auto level = previous->level();
  auto capture = std::make_shared<spdlog::logger>("o26-capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
  capture->set_pattern("%v");
  capture->set_level(spdlog::level::info);
  spdlog::set_default_logger(capture);
  try {
    f();
  } catch (...) {
    spdlog::set_default_logger(previous);
    throw;
  }
  spdlog::set_default_logger(previous);
  previous->set_level(level);
  return out.str();
}

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("MiniCPM-o 2.6 tiny: prompt ids, vision rows, logits and greedy tokens equal the PyTorch reference",
          "[minicpmo26][golden]") {
  auto m = load_tiny();
  const std::string dir = test::data(kTiny + "/case_small");
  ChatPrompt p = m->prepare({picture()}, question());
  const nlohmann::json gp = nlohmann::json::parse(test::slurp(dir + "/golden_prompt.json"));
  CHECK(p.text == gp["text"].get<std::string>());
  CHECK(p.ids == gp["ids"].get<std::vector<int32_t>>());
  REQUIRE(p.images.size() == 1);
  CHECK_FALSE(p.images[0].sliced.grid.has_value());   // small: the upscaled overview only

  auto vision = m->encode_images(p);
  const double ev = test::rel_error(vision.at(0)->data, read_npy(dir + "/golden_vision_embeds.npy").as_float());
  INFO("vision rows relative error " << ev);
  CHECK(ev <= 1e-4);

  const Decoder& dec = m->decoder();
  kernels::Tensor emb = m->embed_prompt(p, vision);
  auto cache = dec.new_cache(emb.rows());
  const std::vector<float> logits = prefill(dec, *cache, emb, true);
  const double el = test::rel_error(logits, read_npy(dir + "/golden_logits.npy").as_float());
  INFO("logits relative error " << el);
  CHECK(el <= 1e-4);

  const std::vector<int32_t> want = read_npy(dir + "/golden_greedy.npy").as_int32();
  auto gc = dec.new_cache(emb.rows() + int64_t(want.size()));
  SamplingParams greedy;
  greedy.greedy = true;
  CHECK(generate(dec, *gc, prefill(dec, *gc, emb, false), int(want.size()), greedy, {}) == want);
}

TEST_CASE("MiniCPM-o 2.6 runs as a Qwen2 behind 2.6's vision path, with the release's template and chat() defaults",
          "[minicpmo26]") {
  auto m = load_tiny();
  CHECK(m->config().arch == "qwen2");
  CHECK(m->config().qkv_bias);
  CHECK(m->has_vision());
  CHECK(m->query_num() == 16);
  const SamplingParams s = m->default_sampling();   // modeling_minicpmo.py chat(sampling=True)
  CHECK(s.temperature == Approx(0.7f));
  CHECK(s.top_p == Approx(0.8f));
  CHECK(s.top_k == 100);
  CHECK(s.repetition_penalty == Approx(1.05f));
  // Qwen2.5's template: its own default system turn, not MiniCPM-V 2.6's.
  CHECK(m->prepare({}, "Hi").text ==
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  const auto stops = m->stop_ids();
  CHECK(std::find(stops.begin(), stops.end(), *m->tokenizer().token_id("<|im_end|>")) != stops.end());
  CHECK(std::find(stops.begin(), stops.end(), *m->tokenizer().token_id("<|endoftext|>")) != stops.end());
}

TEST_CASE("MiniCPM-o 2.6's audio and speech parts are named in one log line and never loaded", "[minicpmo26]") {
  const nlohmann::json h = header_of(test::data(kTiny + "/model.safetensors"));
  size_t apm = 0, proj = 0, tts = 0, loaded = 0, loaded_bytes = 0, skipped_bytes = 0;
  for (auto it = h.begin(); it != h.end(); ++it) {
    const size_t bytes = it.value()["data_offsets"][1].get<size_t>() - it.value()["data_offsets"][0].get<size_t>();
    const std::string& n = it.key();
    if (starts_with(n, "apm.")) ++apm, skipped_bytes += bytes;
    else if (starts_with(n, "audio_projection_layer.")) ++proj, skipped_bytes += bytes;
    else if (starts_with(n, "tts.")) ++tts, skipped_bytes += bytes;
    else ++loaded, loaded_bytes += bytes;
  }
  REQUIRE(apm > 0);
  REQUIRE(proj > 0);
  REQUIRE(tts > 0);

  LoadProgress last;
  const std::string log = log_of([&] { load_tiny([&](const LoadProgress& p) { last = p; }); });
  INFO(log);
  const std::string line = "skipping audio/speech parts: apm.* (" + std::to_string(apm) +
                           " tensors), audio_projection_layer.* (" + std::to_string(proj) + " tensors), tts.* (" +
                           std::to_string(tts) + " tensors)";
  CHECK(count_of(log, line) == 1);
  CHECK(count_of(log, "audio/speech") == 1);
  // Every tensor the loader fetched (each one reported once): exactly the llm/vpm/resampler ones.
  CHECK(last.total_tensors == loaded);
  CHECK(last.done_tensors == loaded);
  CHECK(last.done_bytes == loaded_bytes);
  CHECK(last.total_bytes == loaded_bytes);
  CHECK(skipped_bytes > 0);

  // The parts as OmniParts tallies them from the header alone.
  Checkpoint ckpt(test::data(kTiny));
  const OmniParts parts = OmniParts::of(ckpt);
  CHECK(parts.tensors() == apm + proj + tts);
  CHECK(parts.bytes() == skipped_bytes);
  CHECK(OmniParts::is_skipped("tts.model.norm.weight"));
  CHECK_FALSE(OmniParts::is_skipped("llm.model.norm.weight"));
  CHECK_FALSE(OmniParts::is_skipped("vpm.post_layernorm.weight"));
}

TEST_CASE("a MiniCPM-o checkpoint omnid cannot run is refused, naming the field or tensor", "[minicpmo26][errors]") {
  SECTION("a version other than 2.6") {
    TinyCopy c("v45");
    c.edit_config([](nlohmann::json& cfg) { cfg["version"] = 4.5; });
    CHECK_THROWS_WITH(c.load(), Catch::Contains("config.json") && Catch::Contains("MiniCPM-o version 4.5") &&
                                    Catch::Contains("not supported yet (supported: 2.6)"));
  }
  SECTION("no version") {
    TinyCopy c("nov");
    c.edit_config([](nlohmann::json& cfg) { cfg.erase("version"); });
    CHECK_THROWS_WITH(c.load(), Catch::Contains("config.json") && Catch::Contains("MiniCPM-o config without a numeric 'version'"));
  }
  SECTION("no vision part (init_vision false)") {
    TinyCopy c("novision");
    c.edit_config([](nlohmann::json& cfg) { cfg["init_vision"] = false; });
    CHECK_THROWS_WITH(c.load(), Catch::Contains("config.json") && Catch::Contains("init_vision is false"));
  }
  SECTION("a language-model tensor missing") {
    TinyCopy c("nollm");
    c.drop_tensor("llm.model.layers.1.mlp.down_proj.weight");
    CHECK_THROWS_WITH(c.load(), Catch::Contains("llm.model.layers.1.mlp.down_proj.weight"));
  }
  SECTION("a vision tensor missing") {
    TinyCopy c("novpm");
    c.drop_tensor("resampler.proj");
    CHECK_THROWS_WITH(c.load(), Catch::Contains("resampler.proj"));
  }
  SECTION("the audio and speech tensors are not needed: a checkpoint without them still loads") {
    TinyCopy c("noaudio");
    const nlohmann::json h = header_of((c.dir / "model.safetensors").string());
    for (auto it = h.begin(); it != h.end(); ++it)
      if (OmniParts::is_skipped(it.key())) c.drop_tensor(it.key());
    auto m = c.load();
    CHECK(m->has_vision());
    CHECK(OmniParts::of(Checkpoint(c.dir.string())).skipped.empty());
  }
}
