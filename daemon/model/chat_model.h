#pragma once
// A chat model as users meet it: a checkpoint folder with its tokenizer and chat
// template, and for MiniCPM-V the vision tower, resampler and image processor. It turns
// (pictures, question) into a prompt, the prompt into embeddings with the picture rows
// written over the <unk> placeholders, and leaves decoding to Decoder + generate().
// Text-only checkpoints (Qwen2, Qwen3, Llama) load through the same class.
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "ipc/conversation.h"
#include "image/decode.h"
#include "image/placeholder.h"
#include "model/causal_lm.h"
#include "model/minicpmv_version.h"
#include "model/vision_cache.h"
#include "model/vision_config.h"
#include "tokenizer/chat_template.h"
#include "video/sampling.h"
#include "video/video.h"
#include "tokenizer/tokenizer.h"

namespace omni {

class VisionEncoder;

// An attachment handed in without a copy: an encoded picture (JPEG, PNG, WebP), raw RGB, or
// an encoded video file. `data` stays valid while `keepalive` lives (a file's bytes, a
// client's read-only memfd mapping, ...).
struct ImageInput {
  std::string name;            // for messages: a file path, "request 7 image 0", ...
  const uint8_t* data = nullptr;
  size_t size = 0;
  std::shared_ptr<const void> keepalive;
  int rgb_width = 0, rgb_height = 0;   // set: `data` is raw 8-bit RGB of this size, not encoded
  bool video = false;                  // `data` is an encoded video (MP4, WebM, Matroska, ...)

  static ImageInput from_bytes(std::string name, std::vector<uint8_t> bytes) {
    auto owned = std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
    return {std::move(name), owned->data(), owned->size(), owned};
  }
};

// One picture, one video frame, or (MiniCPM-V 4.5) one group of video frames that share a
// placeholder: the resampler takes the keys of all the group's frames in one cross-attention.
struct PreparedImage {
  std::string cache_key;       // SHA-256 of the bytes (a video frame: of its RGB) + settings
  // A group: the pieces of all its frames, slice-major (piece g of frames 0..n-1, then g+1, ...),
  // every frame sliced alike.
  image::SlicedImage sliced;
  // A 4.5 frame group: one temporal id per frame (its time in 0.1 s units). Empty: a still
  // picture or a 2.6 frame (one piece per resampler call).
  std::vector<int32_t> temporal_ids;

  int frames() const { return temporal_ids.empty() ? 1 : int(temporal_ids.size()); }
  // Resampler outputs (placeholder runs) it makes: one per piece of one frame.
  size_t runs() const { return sliced.pieces.size() / size_t(frames()); }
};

// What was taken from one video: its header and the frames sampled (omnid dump's frames.json).
struct VideoSampling {
  std::string name;
  video::VideoInfo info;
  video::FrameSample sample;
  int max_slice_nums = 1;
};

// One attachment ready for the prompt: a picture is one unit; a video its frames (2.6) or
// its frame groups (4.5), in order.
struct PreparedMedia {
  std::vector<PreparedImage> units;
  std::optional<VideoSampling> video;
};

struct ChatPrompt {
  std::string text;
  std::vector<int32_t> ids;
  std::vector<PreparedImage> images;   // every unit (picture, frame, frame group) in the order the prompt shows them
  std::vector<VideoSampling> videos;   // the prompt's videos, in order
  std::vector<std::pair<int64_t, int64_t>> bounds;  // [first, last) rows of each <unk> run
};

struct ChatModelOptions {
  image::DecodeLimits image_limits;
  video::VideoLimits video_limits;
  size_t vision_cache_bytes = 256ull << 20;
  std::optional<std::string> system_prompt;  // replaces the template's default system turn
  // Qwen3-style templates: true asks the model to reason first. Unset: MiniCPM-V's chat()
  // default (false) for a vision model, the template's own default for a plain LLM.
  std::optional<bool> enable_thinking;
};

class ChatModel {
 public:
  ~ChatModel();
  // Loads `dir`. The vision parts go to the placement's vision device (default: the embedding
  // device), and a copy of them to each of its vision_copies.
  static std::unique_ptr<ChatModel> load(const std::string& dir, const CausalLm::PlaceFn& place,
                                         ProgressFn progress = {}, ChatModelOptions options = {});

  bool has_vision() const { return encoder_ != nullptr; }
  // The devices holding the vision tower, the primary first (empty without vision).
  std::vector<std::shared_ptr<kernels::Device>> vision_devices() const;
  const std::string& name() const { return name_; }
  const Decoder& decoder() const { return *decoder_; }
  const tok::Tokenizer& tokenizer() const { return *tokenizer_; }
  const LlmConfig& config() const { return decoder_->config(); }
  int query_num() const { return pre_.image_feature_size; }
  int patch_size() const { return pre_.slice.patch_size; }   // pixels per vision patch side
  VisionCache& vision_cache() { return *cache_; }

  // One user turn (the attachments, then the question): decodes and slices the pictures,
  // samples and slices the videos' frames, applies the chat template and tokenizes.
  ChatPrompt prepare(const std::vector<ImageInput>& images, const std::string& question,
                     const ipc::PromptOptions& options = {}) const;
  // The two halves of it for a whole conversation: the attachments decoded and sliced
  // (image::DecodeError for a bad picture, video::VideoError for a bad video; `interrupted`
  // can stop a long decode, image::DecodeInterrupted), then the prompt: the turns through the
  // chat template, the placeholders where their attachments are, the turns' text tokenized as
  // text (a client's "<|im_end|>" is no marker). Bad turns throw ipc::IpcError(bad_message).
  std::vector<PreparedMedia> prepare_images(const std::vector<ImageInput>& images,
                                            const ipc::PromptOptions& options = {},
                                            const image::DecodeInterrupt& interrupted = {}) const;
  ChatPrompt prepare_prompt(std::vector<PreparedMedia> media, const std::vector<ipc::Turn>& turns,
                            const ipc::PromptOptions& options = {}) const;
  // Resampler rows of every picture in the prompt, in order (from the cache when seen before).
  // The pictures not cached are encoded together, split among the vision devices
  // (model/vision_encoder.h); a picture shown twice is encoded once.
  // `turns`: the vision device's lock, taken for one piece at a time so that decode steps
  // sharing the device get their turns between pieces (the daemon's scheduler); the other
  // vision devices' copies then take their own device's lock alike.
  // `skip[i]`: picture i is not needed (its rows are reused from the KV cache); its entry is null.
  // `interrupted`: polled between resampler calls (image::DecodeInterrupted; nothing is cached).
  std::vector<std::shared_ptr<const VisionEmbeds>> encode_images(const ChatPrompt& prompt,
                                                                 kernels::TurnLock* turns = nullptr,
                                                                 const std::vector<bool>* skip = nullptr,
                                                                 const image::DecodeInterrupt& interrupted = {});
  // Token embeddings of the prompt with the picture rows written over the <unk> runs
  // (a null entry leaves that picture's runs as they are).
  kernels::Tensor embed_prompt(const ChatPrompt& prompt,
                               const std::vector<std::shared_ptr<const VisionEmbeds>>& vision) const;
  // Normalised pixels [3, H, W] of one piece, as the tower sees them.
  std::vector<float> piece_pixels(const image::Image& piece) const;

  std::vector<int32_t> stop_ids() const { return stop_ids_; }
  SamplingParams default_sampling() const { return defaults_; }
  // Prompt rows with this id are padding for generation (drop_pad_rows), -1 for none: the
  // release's (MiniCpmvVersion::pad_id), 0 for a plain LLM as transformers' generate() with
  // pad_token_id 0 and an attention mask.
  int32_t pad_id() const { return release_ ? release_->pad_id : 0; }

 private:
  ChatModel() = default;
  std::string name_;
  std::unique_ptr<Checkpoint> ckpt_;
  std::unique_ptr<Decoder> decoder_;
  std::unique_ptr<tok::Tokenizer> tokenizer_;
  std::unique_ptr<tok::ChatTemplate> template_;
  ChatModelOptions options_;
  // Vision (MiniCPM-V only).
  image::PreprocessorConfig pre_;
  std::optional<MiniCpmvVersion> release_;
  VideoDefaults video_defaults_;
  std::unique_ptr<VisionEncoder> encoder_;   // the tower and resampler on each vision device
  std::mutex vision_mu_;   // the tower's scratch is per call, but one encode at a time keeps memory bounded
  std::unique_ptr<VisionCache> cache_;
  int32_t unk_id_ = -1, im_start_id_ = -1, im_end_id_ = -1, slice_start_id_ = -1, slice_end_id_ = -1;
  std::vector<int32_t> stop_ids_;
  SamplingParams defaults_;
};

// The image marker chat() puts in the user turn, replaced by each picture's placeholder.
inline constexpr const char* kImageMarker = "(<image>./</image>)";

}  // namespace omni
