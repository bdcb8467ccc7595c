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

struct TurnPart {
  std::string text;     // used when image < 0; tokenized as text (chat markers in it stay text)
  int32_t image = -1;   // >= 0: the request's picture with this index
  static TurnPart of_text(std::string t) { return {std::move(t), -1}; }
  static TurnPart of_image(int32_t i) { return {{}, i}; }
  bool is_image() const { return image >= 0; }
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
};

inline constexpr uint32_t kMaxSliceNums = 64;
inline constexpr size_t kMaxTurns = 256;
inline constexpr size_t kMaxPartsPerTurn = 64;

// One user turn: pictures 0..n_images-1, then the question.
std::vector<Turn> single_turn(size_t n_images, std::string question);

// Checks the shape: 1..kMaxTurns turns, a system turn only first, no empty turn, at
// most kMaxPartsPerTurn parts, every picture index in [0, n_images) used exactly once,
// max_slice_nums in range. Throws IpcError(bad_message) naming the place
// ("messages[2].content[0]: picture 3 of 2").
void validate_conversation(const std::vector<Turn>& turns, size_t n_images, const PromptOptions& options);

}  // namespace omni::ipc
