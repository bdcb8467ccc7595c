// omnid dump: runs a checkpoint on given tokens and writes what it computed as .npy
// files, for comparison with reference implementations.
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/device_options.h"
#include "cli/preflight.h"
#include "cli/read_file.h"
#include "cli/video_options.h"
#include "model/answer.h"
#include "model/causal_lm.h"
#include "util/error.h"
#include "util/npy.h"

namespace omni {

namespace {

std::vector<int32_t> parse_tokens(const std::string& s) {
  std::vector<int32_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      long v = std::stol(item, &used);
      if (used != item.size() || v < 0 || v > INT32_MAX) throw std::invalid_argument(item);
      out.push_back(int32_t(v));
    } catch (const std::exception&) {
      throw Error("--tokens: '" + item + "' is not a token id");
    }
  }
  if (out.empty()) throw Error("--tokens: no token ids given");
  return out;
}

struct DumpArgs {
  std::string model, tokens, out, image, text;
  int generate = 0;
  std::optional<int> pad_id;   // unset: the model's (ChatModel::pad_id), 0 for --tokens
  DeviceOptions devices;
  VideoOptions video;
};

// What was sampled from each video: frames.json.
nlohmann::json frames_json(const std::vector<VideoSampling>& videos) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& v : videos) {
    nlohmann::json j = {{"video", v.name},           {"frame_count", v.info.frame_count},
                        {"fps", v.info.fps},         {"duration_s", v.info.duration_s},
                        {"width", v.info.width},     {"height", v.info.height},
                        {"codec", v.info.codec},     {"indices", v.sample.indices},
                        {"packing", v.sample.packing}, {"max_slice_nums", v.max_slice_nums}};
    if (!v.sample.temporal_ids.empty()) j["temporal_ids"] = v.sample.temporal_ids;
    out.push_back(std::move(j));
  }
  return out;
}

// The MiniCPM-V form: picture + question through slicing, the tower, the resampler
// and the decoder, writing every intermediate the reference can be compared at.
void run_dump_vision(const DumpArgs& a) {
  std::filesystem::create_directories(a.out);
  ChatModelOptions mo;
  std::vector<ImageInput> images;
  if (!a.image.empty()) {
    check_readable_file(a.image, "--image");
    as_usage_error("--image", [&] { images.push_back(ImageInput::from_bytes(a.image, read_file_bytes(a.image, mo.image_limits.max_encoded_bytes))); });
  }
  ipc::PromptOptions po;
  a.video.apply(po);
  for (auto& v : a.video.read(mo.video_limits)) images.push_back(std::move(v));
  check_model_and_plan(a.model, a.devices);
  auto model = ChatModel::load(a.model, a.devices.placer(a.model), log_progress(a.model), mo);
  ChatPrompt prompt = model->prepare(images, a.text, po);
  {
    nlohmann::json pj = {{"text", prompt.text}, {"ids", prompt.ids}};
    std::ofstream(a.out + "/prompt.json") << pj.dump(1);
  }
  if (!prompt.videos.empty()) std::ofstream(a.out + "/frames.json") << frames_json(prompt.videos).dump(1);
  if (!prompt.images.empty()) {
    const auto& sl = prompt.images[0].sliced;
    nlohmann::json sj;
    sj["grid"] = sl.grid ? nlohmann::json::array({sl.grid->first, sl.grid->second}) : nlohmann::json(nullptr);
    sj["sizes_wh"] = nlohmann::json::array();
    sj["tgt_sizes_hw"] = nlohmann::json::array();
    for (size_t i = 0; i < sl.pieces.size(); ++i) {
      const auto& p = sl.pieces[i];
      sj["sizes_wh"].push_back({p.width, p.height});
      sj["tgt_sizes_hw"].push_back({p.height / model->patch_size(), p.width / model->patch_size()});
      std::vector<float> px = model->piece_pixels(p);
      write_npy(a.out + "/pixels_" + std::to_string(i) + ".npy", px.data(), {3, p.height, p.width});
    }
    std::ofstream(a.out + "/slices.json") << sj.dump(1);
  }
  auto vision = model->encode_images(prompt);
  if (!vision.empty()) {
    std::vector<float> all;
    int64_t pieces = 0;
    for (const auto& v : vision) {
      all.insert(all.end(), v->data.begin(), v->data.end());
      pieces += v->pieces;
    }
    write_npy(a.out + "/vision_embeds.npy", all.data(), {pieces, model->query_num(), model->config().hidden});
  }
  const Decoder& dec = model->decoder();
  kernels::Tensor emb = model->embed_prompt(prompt, vision);
  auto cache = dec.new_cache(emb.rows());
  std::vector<float> logits = prefill(dec, *cache, emb, true);
  write_npy(a.out + "/logits.npy", logits.data(), {emb.rows(), dec.config().vocab});
  if (a.generate > 0) {
    kernels::Tensor gen_emb = drop_pad_rows(emb, prompt.ids, a.pad_id.value_or(model->pad_id()));
    auto gen_cache = dec.new_cache(gen_emb.rows() + a.generate + 1);
    SamplingParams greedy;
    greedy.greedy = true;
    const SamplingParams& s = greedy;
    std::vector<int32_t> gen = generate(dec, *gen_cache, prefill(dec, *gen_cache, gen_emb, false), a.generate, s, {});
    write_npy(a.out + "/generated.npy", gen.data(), {int64_t(gen.size())});
  }
}

void run_dump(const DumpArgs& a) {
  if (!a.text.empty() || !a.image.empty() || !a.video.files.empty()) {
    if (!a.tokens.empty()) throw UsageError("dump: give either --tokens or --image/--video/--text, not both");
    run_dump_vision(a);
    return;
  }
  if (a.tokens.empty()) throw UsageError("dump: give --tokens, or --text (with --image for a picture)");
  std::vector<int32_t> ids;
  as_usage_error("--tokens", [&] { ids = parse_tokens(a.tokens); });
  check_model_and_plan(a.model, a.devices);
  std::filesystem::create_directories(a.out);
  auto lm = CausalLm::load(a.model, a.devices.placer(a.model), log_progress(a.model));
  const Decoder& dec = lm->decoder();
  auto cache = dec.new_cache(int64_t(ids.size()));
  std::vector<float> logits = prefill(dec, *cache, dec.embed(ids), true);
  write_npy(a.out + "/logits.npy", logits.data(), {int64_t(ids.size()), dec.config().vocab});
  if (a.generate > 0) {
    // As transformers' generate() with pad_token_id: pad tokens in the prompt are padding.
    const int pad_id = a.pad_id.value_or(0);
    std::vector<int32_t> prompt = drop_pad_tokens(ids, pad_id);
    if (prompt.empty()) throw Error("--tokens: the prompt holds only pad tokens (--pad-id " + std::to_string(pad_id) + ")");
    auto gen_cache = dec.new_cache(int64_t(prompt.size()) + a.generate + 1);
    SamplingParams greedy;
    greedy.greedy = true;
    const SamplingParams& s = greedy;
    std::vector<float> last = prefill(dec, *gen_cache, dec.embed(prompt), false);
    std::vector<int32_t> gen = generate(dec, *gen_cache, std::move(last), a.generate, s, {});
    write_npy(a.out + "/generated.npy", gen.data(), {int64_t(gen.size())});
  }
}

}  // namespace

void add_dump_command(CLI::App& app) {
  auto a = std::make_shared<DumpArgs>();
  CLI::App* cmd = app.add_subcommand("dump", "Run a checkpoint on given tokens and write logits (and greedy tokens) as .npy");
  cmd->add_option("--model", a->model, "Checkpoint folder (Hugging Face layout)")->required();
  cmd->add_option("--tokens", a->tokens, "Comma-separated prompt token ids");
  cmd->add_option("--image", a->image, "A picture (MiniCPM-V checkpoints)");
  cmd->add_option("--text", a->text, "The question, put through the chat template");
  cmd->add_option("--out", a->out, "Output folder")->required();
  cmd->add_option("--generate", a->generate, "Greedy tokens to generate after the prompt")->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--pad-id", a->pad_id,
                  "Prompt tokens with this id are padding for --generate, as in transformers' generate(pad_token_id=...); "
                  "-1: none. Default: the model's (0; none for MiniCPM-Llama3-V 2.5, whose generate() has no mask)");
  a->devices.add_to(cmd);
  a->video.add_to(cmd);
  cmd->callback([a] { run_dump(*a); });
}

}  // namespace omni
