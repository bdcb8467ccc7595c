// ipc/conversation.h - a request's conversation, as every front carries it.
//
// System, user and assistant turns, each a sequence of text and pictures in any order,
// as MiniCPM-V's chat() takes them. A picture part refers to the request's picture list
// by index (each picture exactly once), so a transport hands the bytes over once
// (memfds on the socket, data: URLs over HTTP) and the turns stay small. The engine
// renders these with the model's chat template (daemon/model/chat_model.h); the
// single-prompt request is one user turn, its pictures first, then the question.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace omni::ipc {

enum class Role : uint8_t { system, user, assistant };   // wire: "system" | "user" | "assistant"
const char* role_name(Role r) noexcept;
std::optional<Role> role_from_name(std::string_view s) noexcept;

// A picture part and a video part both index the request's one list of attachments
// (its "images": pictures, encoded or raw, and encoded videos); `video` records which of
// the two the sender wrote, so a transport can check it against the attachment's kind.
struct TurnPart {
  std::string text;     // used when image < 0; tokenized as text (chat markers in it stay text)
  int32_t image = -1;   // >= 0: the request's attachment with this index
  bool video = false;   // the sender wrote a video part ({"video": k})
  static TurnPart of_text(std::string t) { return {std::move(t), -1, false}; }
  static TurnPart of_image(int32_t i) { return {{}, i, false}; }
  static TurnPart of_video(int32_t i) { return {{}, i, true}; }
  bool is_image() const { return image >= 0; }   // an attachment: a picture or a video
};

struct Turn {
  Role role = Role::user;
  std::vector<TurnPart> parts;
};

// Per-request prompt settings from the released chat(); unset keeps the checkpoint's
// (preprocessor_config.json, the chat template's own default).
struct PromptOptions {
  std::optional<uint32_t> max_slice_nums;   // 1..kMaxSliceNums slices per picture
  std::optional<bool> use_image_id;         // <image_id>k</image_id> before picture k
  std::optional<bool> enable_thinking;      // Qwen3-style templates (MiniCPM-V 4.5)
  // Videos (the released encode_video; unset keeps the release's defaults, docs/video.md):
  std::optional<double> video_fps;              // frames sampled per second: 2.6 1, 4.5 3
  std::optional<uint32_t> video_max_frames;     // 2.6: frames (64); 4.5: groups (180)
  std::optional<uint32_t> video_max_packing;    // 4.5: frames per group at most, 1..6 (3)
  std::optional<uint32_t> video_max_slice_nums; // slices per frame: 2.6 2, 4.5 1
};

inline constexpr uint32_t kMaxSliceNums = 64;
inline constexpr uint32_t kMaxVideoFrames = 1024;   // video_max_frames (the prompt's length limit still applies)
inline constexpr uint32_t kMaxVideoPacking = 6;     // MiniCPM-V 4.5's valid packing range
inline constexpr double kMaxVideoFps = 60;
inline constexpr size_t kMaxTurns = 256;
inline constexpr size_t kMaxPartsPerTurn = 64;

// One user turn: attachments 0..n_images-1, then the question. `videos[i]` marks attachment
// i a video (shorter or empty: pictures).
std::vector<Turn> single_turn(size_t n_images, std::string question, const std::vector<bool>& videos = {});

// Checks the shape: 1..kMaxTurns turns, a system turn only first, no empty turn, at
// most kMaxPartsPerTurn parts, every picture index in [0, n_images) used exactly once,
// max_slice_nums and the video settings in range. Throws IpcError(bad_message) naming the place
// ("messages[2].content[0]: picture 3 of 2").
void validate_conversation(const std::vector<Turn>& turns, size_t n_images, const PromptOptions& options);

}  // namespace omni::ipc
