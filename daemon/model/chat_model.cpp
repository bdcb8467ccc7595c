#include "model/chat_model.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>

#include "image/normalize.h"
#include "kernels/ops.h"
#include "model/minicpmv_version.h"
#include "model/omni_parts.h"
#include "model/sha256.h"
#include "model/video_frames.h"
#include "model/vision_encoder.h"
#include "util/error.h"

namespace omni {

namespace fs = std::filesystem;

ChatModel::~ChatModel() = default;

namespace {

int32_t require_token(const tok::Tokenizer& t, const std::string& s, const std::string& dir) {
  auto id = t.token_id(s);
  if (!id) throw Error(dir + "/tokenizer.json: the MiniCPM-V token '" + s + "' is missing");
  return *id;
}

// A picture handed over as raw RGB: the same limits as decoded ones.
image::Image raw_rgb(const ImageInput& in, const image::DecodeLimits& lim) {
  const uint64_t w = uint64_t(in.rgb_width), h = uint64_t(in.rgb_height);
  if (in.rgb_width < lim.min_side || in.rgb_height < lim.min_side)
    throw image::DecodeError(in.name + ": raw RGB picture of " + std::to_string(w) + "x" + std::to_string(h) +
                " is smaller than the minimum side " + std::to_string(lim.min_side));
  if (w * h > lim.max_pixels)
    throw image::DecodeError(in.name + ": raw RGB picture of " + std::to_string(w * h) + " pixels exceeds the limit of " +
                std::to_string(lim.max_pixels));
  if (in.size != w * h * 3)
    throw image::DecodeError(in.name + ": raw RGB picture of " + std::to_string(w) + "x" + std::to_string(h) + " needs " +
                std::to_string(w * h * 3) + " bytes, got " + std::to_string(in.size));
  image::Image img;
  img.width = in.rgb_width;
  img.height = in.rgb_height;
  img.rgb.assign(in.data, in.data + in.size);
  return img;
}

// MiniCPM-Llama3-V 2.5 runs every piece of a request as one strip as long as the longest
// (VisionInput::padded_strip): the patches of the longest piece among all of them.
int strip_patches(const std::vector<PreparedImage>& images, int patch) {
  int64_t n = 0;
  for (const PreparedImage& im : images)
    for (const image::Image& piece : im.sliced.pieces)
      n = std::max<int64_t>(n, int64_t(piece.width / patch) * (piece.height / patch));
  return int(n);
}

}  // namespace

std::unique_ptr<ChatModel> ChatModel::load(const std::string& dir, const CausalLm::PlaceFn& place, ProgressFn progress,
                                           ChatModelOptions options) {
  std::unique_ptr<ChatModel> m(new ChatModel());
  m->options_ = options;
  m->cache_ = std::make_unique<VisionCache>(options.vision_cache_bytes);
  m->name_ = fs::path(dir).filename().string();
  if (m->name_.empty()) m->name_ = fs::path(dir).parent_path().filename().string();
  m->ckpt_ = std::make_unique<Checkpoint>(dir);
  const nlohmann::json& cfg = m->ckpt_->config();
  const std::string cfg_path = dir + "/config.json";
  const bool is_vlm = MiniCpmvVersion::applies_to(cfg);   // MiniCPM-V or MiniCPM-o

  LlmConfig llm;
  std::string prefix;
  std::optional<MiniCpmvVersion> release;
  if (is_vlm) {
    release = MiniCpmvVersion::from_config(cfg, cfg_path);
    if (release->omni) OmniParts::check_config(cfg, cfg_path);
    llm = LlmConfig::from_json(cfg, cfg_path, release->llm_arch);
    llm.rope_freq_dtype = "float32";   // see LlmConfig::rope_freq_dtype
    prefix = "llm.";
  } else {
    llm = LlmConfig::from_json(cfg, cfg_path);
  }
  m->tokenizer_ = std::make_unique<tok::Tokenizer>(tok::Tokenizer::load(dir));
  m->template_ = std::make_unique<tok::ChatTemplate>(tok::ChatTemplate::from_model_dir(dir));

  // MiniCPM-o: the audio/speech tensors are only counted from the header here; nothing
  // below asks the loader for them.
  if (release && release->omni) spdlog::info("model {}: {}", m->name_, OmniParts::of(*m->ckpt_).summary());
  WeightLoader loader(*m->ckpt_, std::move(progress));
  DecoderPlacement placement = place(llm);
  std::vector<std::shared_ptr<kernels::Device>> vision_devs{placement.vision_device ? placement.vision_device
                                                                                     : placement.embed_device};
  for (const auto& d : placement.vision_copies)
    if (std::find(vision_devs.begin(), vision_devs.end(), d) == vision_devs.end()) vision_devs.push_back(d);
  VisionConfig vc;
  if (is_vlm) {   // every part announced before any loads: progress runs to 100 % once
    if (!cfg.contains("vision_config"))
      throw Error(cfg_path + ": " + release->family + " config without vision_config");
    vc = VisionConfig::from_json(cfg["vision_config"], cfg_path + ": vision_config");
    if (cfg.value("drop_vision_last_layer", false)) vc.n_layers -= 1;
    VisionEncoder::plan_weights(loader, vc, "vpm.", "resampler.");
  }
  Decoder::plan_weights(loader, llm, prefix);
  m->decoder_ = std::make_unique<Decoder>(loader, llm, prefix, std::move(placement));

  if (is_vlm) {
    m->pre_ = image::load_preprocessor_config(dir + "/preprocessor_config.json");
    const int query_num = cfg.value("query_num", 64);
    if (query_num != m->pre_.image_feature_size)
      throw Error(dir + ": query_num " + std::to_string(query_num) + " in config.json differs from image_feature_size " +
                  std::to_string(m->pre_.image_feature_size) + " in preprocessor_config.json");
    if (llm.hidden % 128) throw Error(cfg_path + ": hidden_size must be a multiple of 128 for the resampler heads");
    const ChatModel* self = m.get();
    m->encoder_ = std::make_unique<VisionEncoder>(
        loader, vc, "vpm.", "resampler.", VisionEncoder::Shape{llm.hidden, query_num, m->pre_.slice.patch_size},
        [self](const image::Image& piece) { return self->piece_pixels(piece); }, vision_devs);
    const auto& t = m->pre_.tokens;
    m->unk_id_ = require_token(*m->tokenizer_, t.unk, dir);
    m->im_start_id_ = require_token(*m->tokenizer_, t.im_start, dir);
    m->im_end_id_ = require_token(*m->tokenizer_, t.im_end, dir);
    m->slice_start_id_ = require_token(*m->tokenizer_, t.slice_start, dir);
    m->slice_end_id_ = require_token(*m->tokenizer_, t.slice_end, dir);
    m->defaults_ = release->defaults;
    m->video_defaults_ = release->video;
    m->release_ = release;
  }
  // Stop at <|im_end|> and <|endoftext|> (MiniCPM-V's terminators) or the config's eos.
  m->stop_ids_ = llm.eos_ids;
  for (const char* s : {"<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>"})
    if (auto id = m->tokenizer_->token_id(s)) m->stop_ids_.push_back(*id);
  spdlog::info("model {} loaded: {} layers, hidden {}, vocab {}{}", m->name_, llm.n_layers, llm.hidden, llm.vocab,
               is_vlm ? ", with vision" : "");
  return m;
}

std::vector<PreparedMedia> ChatModel::prepare_images(const std::vector<ImageInput>& images,
                                                    const ipc::PromptOptions& options,
                                                    const image::DecodeInterrupt& interrupted) const {
  if (!images.empty() && !has_vision())
    throw Error("model " + name_ + " has no vision tower: it cannot take pictures or videos",
                ipc::ErrorCode::bad_message);
  image::SliceConfig slice = pre_.slice;
  if (options.max_slice_nums) slice.max_slice_nums = int(*options.max_slice_nums);
  std::vector<PreparedMedia> out;
  auto check = [&](const ImageInput& in) {   // between the steps that do not poll it themselves
    if (interrupted && interrupted()) throw image::DecodeInterrupted(in.name + ": preparing it was interrupted");
  };
  for (const ImageInput& in : images) {
    check(in);
    if (in.video) {
      if (release_ && !release_->video_supported)
        throw Error(in.name + ": MiniCPM-V " + release_->name + " has no video input in its release",
                    ipc::ErrorCode::bad_message);
      out.push_back(prepare_video(in, video_settings(video_defaults_, options), pre_.slice, options_.video_limits,
                                  interrupted));
      continue;
    }
    image::Image img = in.rgb_width ? raw_rgb(in, options_.image_limits)
                                    : image::decode_image(in.data, in.size, options_.image_limits, in.name, interrupted);
    check(in);
    PreparedImage prep;
    prep.sliced = image::slice_image(img, slice);
    prep.cache_key = sha256_hex(in.data, in.size) + "/" + std::to_string(slice.scale_resolution) + "/" +
                     std::to_string(slice.max_slice_nums) + "/" + std::to_string(slice.slice_mode) + "/" +
                     std::to_string(options_.image_limits.apply_exif_orientation);
    PreparedMedia m;
    m.units.push_back(std::move(prep));
    out.push_back(std::move(m));
  }
  return out;
}

ChatPrompt ChatModel::prepare(const std::vector<ImageInput>& images, const std::string& question,
                              const ipc::PromptOptions& options) const {
  std::vector<bool> videos;
  for (const auto& in : images) videos.push_back(in.video);
  return prepare_prompt(prepare_images(images, options), ipc::single_turn(images.size(), question, videos), options);
}

ChatPrompt ChatModel::prepare_prompt(std::vector<PreparedMedia> media, const std::vector<ipc::Turn>& turns,
                                     const ipc::PromptOptions& options) const {
  ipc::validate_conversation(turns, media.size(), options);
  if (!media.empty() && !has_vision())
    throw Error("model " + name_ + " has no vision tower: it cannot take pictures or videos",
                ipc::ErrorCode::bad_message);
  // Image ids only where the release's processor has them (not 2.5).
  const bool use_image_id = (!release_ || release_->image_ids) && options.use_image_id.value_or(pre_.use_image_id);
  const image::PlaceholderSchema schema = release_ ? release_->placeholders : image::PlaceholderSchema::slice_per_piece;
  ChatPrompt p;
  // chat(): a turn's items joined with "\n", each picture a marker that the processor then
  // replaces with the picture's placeholder, numbered in the order they appear. Here the
  // placeholder goes in directly, as markup: the client's text around it stays literal.
  std::vector<tok::ChatTurn> msgs;
  int markers = 0;   // image markers so far: the released processor numbers pictures and frames alike
  if (options_.system_prompt && turns.front().role != ipc::Role::system)
    msgs.push_back({"system", {{*options_.system_prompt, true}}});
  for (const ipc::Turn& t : turns) {
    tok::ChatTurn m{ipc::role_name(t.role), {}};
    for (size_t k = 0; k < t.parts.size(); ++k) {
      if (k) m.content.push_back({"\n", false});
      const ipc::TurnPart& part = t.parts[k];
      if (!part.is_image()) {
        m.content.push_back({part.text, true});
        continue;
      }
      PreparedMedia& item = media[size_t(part.image)];
      if (!item.video) {
        PreparedImage& im = item.units.front();
        m.content.push_back({image::image_placeholder(markers, im.sliced, pre_.image_feature_size, use_image_id,
                                                      pre_.tokens, schema),
                             false});
        ++markers;
        p.images.push_back(std::move(im));   // in the order of appearance, as the rows are
        continue;
      }
      // A video is its frames given to chat() as pictures, each a marker joined by "\n", with
      // image ids off. 4.5 groups them: the processor gives a group's first frame the
      // placeholder and drops the others' markers with the "\n" before them (its
      // skip_image_idx), so the video reads as its units' placeholders joined by "\n".
      for (size_t u = 0; u < item.units.size(); ++u) {
        PreparedImage& im = item.units[u];
        if (u) m.content.push_back({"\n", false});
        m.content.push_back(
            {image::image_placeholder(markers, im.sliced, pre_.image_feature_size, false, pre_.tokens, schema), false});
        markers += im.frames();
        p.images.push_back(std::move(im));
      }
      p.videos.push_back(std::move(*item.video));
    }
    msgs.push_back(std::move(m));
  }
  // MiniCPM-V 4.5's chat() passes enable_thinking=False: its template then ends the
  // prompt with an empty <think></think> block (templates without the switch ignore it).
  std::optional<bool> thinking = options.enable_thinking ? options.enable_thinking : options_.enable_thinking;
  if (!thinking && has_vision()) thinking = false;
  tok::RenderedPrompt rendered = template_->render(msgs, true, thinking);
  p.text = std::move(rendered.text);
  p.ids = tokenizer_->encode(p.text, rendered.literal);
  // Runs of <unk> between <image>/<slice> and </image>/</slice>, as image_bound. Only the
  // placeholders can hold those tokens: they are special, and the turns' text is literal.
  if (has_vision()) {
    int64_t open = -1;
    for (int64_t i = 0; i < int64_t(p.ids.size()); ++i) {
      const int32_t id = p.ids[size_t(i)];
      if (id == im_start_id_ || id == slice_start_id_) open = i + 1;
      else if ((id == im_end_id_ || id == slice_end_id_) && open >= 0) {
        p.bounds.emplace_back(open, i);
        open = -1;
      }
    }
  }
  // 2.5: a picture's rows depend on the request's longest piece, so that length is part of
  // the picture's identity (vision cache, KV prefix reuse).
  if (release_ && release_->vision_input == VisionInput::padded_strip) {
    const std::string strip = "/strip" + std::to_string(strip_patches(p.images, pre_.slice.patch_size));
    for (PreparedImage& im : p.images) im.cache_key += strip;
  }
  size_t runs = 0;
  for (const auto& im : p.images) runs += im.runs();
  if (p.bounds.size() != runs)
    throw Error("prompt has " + std::to_string(p.bounds.size()) + " image placeholders for " + std::to_string(runs) +
                " picture pieces (a tokenizer whose picture tokens are not special?)");
  return p;
}

std::vector<float> ChatModel::piece_pixels(const image::Image& piece) const {
  return image::normalize_chw(piece, pre_.norm_mean, pre_.norm_std);
}

std::vector<std::shared_ptr<kernels::Device>> ChatModel::vision_devices() const {
  std::vector<std::shared_ptr<kernels::Device>> out;
  for (size_t i = 0; encoder_ && i < encoder_->copies(); ++i) out.push_back(encoder_->device(i));
  return out;
}

std::vector<std::shared_ptr<const VisionEmbeds>> ChatModel::encode_images(const ChatPrompt& prompt,
                                                                          kernels::TurnLock* turns,
                                                                          const std::vector<bool>* skip,
                                                                          const image::DecodeInterrupt& interrupted) {
  std::vector<std::shared_ptr<const VisionEmbeds>> out(prompt.images.size());
  std::vector<std::pair<size_t, std::shared_ptr<VisionEmbeds>>> fresh;   // picture, its rows to be
  std::vector<VisionUnit> units;
  const size_t unit_rows = size_t(pre_.image_feature_size) * size_t(config().hidden);
  const int strip = release_ && release_->vision_input == VisionInput::padded_strip
                        ? strip_patches(prompt.images, pre_.slice.patch_size)
                        : 0;
  for (size_t i = 0; i < prompt.images.size(); ++i) {
    const PreparedImage& im = prompt.images[i];
    if (skip && i < skip->size() && (*skip)[i]) continue;
    if ((out[i] = cache_->find(im.cache_key))) continue;
    const auto same = std::find_if(fresh.begin(), fresh.end(),
                                   [&](const auto& f) { return prompt.images[f.first].cache_key == im.cache_key; });
    if (same != fresh.end()) {
      out[i] = same->second;
      continue;
    }
    auto e = std::make_shared<VisionEmbeds>();
    e->pieces = int(im.runs());
    e->rows_per_piece = pre_.image_feature_size;
    e->width = config().hidden;
    e->data.resize(im.runs() * unit_rows);
    for (VisionUnit& u : VisionEncoder::units_of(im.sliced.pieces, im.temporal_ids, e->data.data(), unit_rows)) {
      u.strip_patches = strip;
      units.push_back(std::move(u));
    }
    out[i] = e;
    fresh.emplace_back(i, std::move(e));
  }
  if (units.empty()) return out;
  {
    std::lock_guard<std::mutex> lock(vision_mu_);
    encoder_->run(units, turns, interrupted);
  }
  for (auto& [i, e] : fresh) cache_->insert(prompt.images[i].cache_key, std::move(e));
  return out;
}

kernels::Tensor ChatModel::embed_prompt(const ChatPrompt& prompt,
                                        const std::vector<std::shared_ptr<const VisionEmbeds>>& vision) const {
  kernels::Tensor emb = decoder_->embed(prompt.ids);
  const int64_t H = config().hidden;
  size_t b = 0;
  if (vision.size() != prompt.images.size())
    throw Error(std::to_string(vision.size()) + " picture embeddings for " + std::to_string(prompt.images.size()) +
                " pictures");
  for (size_t i = 0; i < vision.size(); ++i) {
    const auto& v = vision[i];
    if (!v) {   // reused from the KV cache: its rows are never read
      b += prompt.images[i].runs();
      continue;
    }
    for (int piece = 0; piece < v->pieces; ++piece, ++b) {
      if (b >= prompt.bounds.size()) throw Error("more picture pieces than placeholders in the prompt");
      const auto [first, last] = prompt.bounds[b];
      if (last - first != v->rows_per_piece || v->width != H)
        throw Error("placeholder run of " + std::to_string(last - first) + " tokens for " +
                    std::to_string(v->rows_per_piece) + " resampler rows");
      const float* src = v->data.data() + size_t(piece) * size_t(v->rows_per_piece) * size_t(H);
      kernels::Tensor rows = kernels::Tensor::from_host(emb.device_ptr(), emb.dtype(), {last - first, H}, src);
      kernels::Tensor dst = emb.rows_view(first, last - first);
      emb.device().ops().copy(rows, dst);
    }
  }
  if (b != prompt.bounds.size()) throw Error("fewer picture pieces than placeholders in the prompt");
  return emb;
}

}  // namespace omni
