// ipc/chat_json.h - OpenAI-style chat `messages` JSON read into a conversation.
//
// The one reader of that shape, for the daemon's HTTP front (POST /v1/chat/completions)
// and for `omni ask --messages FILE.json`. `content` is a string or an array of parts:
//   {"type": "text", "text": "..."}
//   {"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}   (or "image_url": "...")
//   {"type": "video_url", "video_url": {"url": "data:video/mp4;base64,..."}}   (vLLM's video part)
// Roles: system (and OpenAI's newer "developer", read as system), user, assistant.
// A data: URL (image/png, image/jpeg, image/webp; base64) is decoded here; any other URL
// is handed back as a path for the caller to resolve under its own rules (the daemon:
// only file:// under allowed_image_dirs; the CLI: local files), and nothing is fetched
// from the network by anyone. Errors are IpcError naming the JSON path
// ("messages[1].content[0].image_url.url: ..."): bad_message for the shape, too_large over
// a limit, bad_image for a data: URL that is not a picture's base64.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "ipc/conversation.h"
#include "ipc/limits.h"

namespace omni::ipc {

struct PictureSource {
  enum class Kind : uint8_t { bytes, location };
  Kind kind = Kind::bytes;
  std::vector<uint8_t> bytes;  // Kind::bytes: the decoded data: URL
  std::string location;        // Kind::location: the URL as written (file://..., a path, http://...)
  std::string where;           // "messages[1].content[0].image_url", for the caller's errors
  bool video = false;          // a video_url part
};

struct ChatMessages {
  std::vector<Turn> turns;               // picture parts index `pictures`
  std::vector<PictureSource> pictures;
};

// Limits used: max_images (pictures and videos in all), max_image_bytes (each decoded picture),
// max_video_bytes (each decoded video), max_prompt_bytes (all text together).
ChatMessages read_chat_messages(const nlohmann::json& messages, const Limits& limits);

// Standard base64 (RFC 4648 alphabet, '=' padding optional, no whitespace). Returns false
// on any other character, a bad length or non-zero trailing bits.
bool decode_base64(std::string_view in, std::vector<uint8_t>& out);

}  // namespace omni::ipc
