#include "ipc/conversation.h"

#include "ipc/error.h"

namespace omni::ipc {

const char* role_name(Role r) noexcept {
  switch (r) {
    case Role::system: return "system";
    case Role::user: return "user";
    case Role::assistant: return "assistant";
  }
  return "?";
}

std::optional<Role> role_from_name(std::string_view s) noexcept {
  if (s == "system") return Role::system;
  if (s == "user") return Role::user;
  if (s == "assistant") return Role::assistant;
  return std::nullopt;
}

std::vector<Turn> single_turn(size_t n_images, std::string question, const std::vector<bool>& videos) {
  Turn t;
  t.role = Role::user;
  for (size_t i = 0; i < n_images; ++i)
    t.parts.push_back(i < videos.size() && videos[i] ? TurnPart::of_video(int32_t(i)) : TurnPart::of_image(int32_t(i)));
  t.parts.push_back(TurnPart::of_text(std::move(question)));
  return {std::move(t)};
}

void validate_conversation(const std::vector<Turn>& turns, size_t n_images, const PromptOptions& options) {
  auto bad = [](const std::string& m) { return IpcError(ErrorCode::bad_message, m); };
  if (turns.empty()) throw bad("messages: the conversation has no turns");
  if (turns.size() > kMaxTurns)
    throw bad("messages: " + std::to_string(turns.size()) + " turns, at most " + std::to_string(kMaxTurns));
  if (options.max_slice_nums && (*options.max_slice_nums < 1 || *options.max_slice_nums > kMaxSliceNums))
    throw bad("max_slice_nums: " + std::to_string(*options.max_slice_nums) + " is outside 1.." +
              std::to_string(kMaxSliceNums));
  auto in_range = [&](const char* name, const std::optional<uint32_t>& v, uint32_t lo, uint32_t hi) {
    if (v && (*v < lo || *v > hi))
      throw bad(std::string(name) + ": " + std::to_string(*v) + " is outside " + std::to_string(lo) + ".." +
                std::to_string(hi));
  };
  in_range("video_max_frames", options.video_max_frames, 1, kMaxVideoFrames);
  in_range("video_max_packing", options.video_max_packing, 1, kMaxVideoPacking);
  in_range("video_max_slice_nums", options.video_max_slice_nums, 1, kMaxSliceNums);
  if (options.video_fps && !(*options.video_fps > 0 && *options.video_fps <= kMaxVideoFps))
    throw bad("video_fps: " + std::to_string(*options.video_fps) + " is outside (0, " +
              std::to_string(int(kMaxVideoFps)) + "]");
  std::vector<int> uses(n_images, 0);
  for (size_t t = 0; t < turns.size(); ++t) {
    const std::string where = "messages[" + std::to_string(t) + "]";
    const Turn& m = turns[t];
    if (m.role == Role::system && t > 0) throw bad(where + ": a system turn may only come first");
    if (m.parts.empty()) throw bad(where + ".content: empty");
    if (m.parts.size() > kMaxPartsPerTurn)
      throw bad(where + ".content: " + std::to_string(m.parts.size()) + " parts, at most " +
                std::to_string(kMaxPartsPerTurn));
    for (size_t p = 0; p < m.parts.size(); ++p) {
      const TurnPart& part = m.parts[p];
      if (!part.is_image()) continue;
      const std::string pw = where + ".content[" + std::to_string(p) + "]";
      if (size_t(part.image) >= n_images)
        throw bad(pw + ": attachment " + std::to_string(part.image) + " of " + std::to_string(n_images));
      if (uses[size_t(part.image)]++) throw bad(pw + ": attachment " + std::to_string(part.image) + " is used twice");
    }
  }
  for (size_t i = 0; i < n_images; ++i)
    if (!uses[i]) throw bad("images[" + std::to_string(i) + "]: no message part refers to it");
}

}  // namespace omni::ipc
