#include "ipc/chat_json.h"

#include <nlohmann/json.hpp>

#include "ipc/error.h"

namespace omni::ipc {

namespace {

int b64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

const char* type_name(const nlohmann::json& j) { return j.type_name(); }

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return s;
}

// data:image/png;base64,AAAA (a video: data:video/mp4;base64,...) -> bytes. `where` names the url field.
std::vector<uint8_t> read_data_url(std::string_view url, const Limits& limits, const std::string& where, bool video) {
  const auto comma = url.find(',');
  if (comma == std::string_view::npos) throw IpcError(ErrorCode::bad_image, where + ": a data: URL without a ','");
  const std::string head = lower(std::string(url.substr(5, comma - 5)));   // after "data:"
  const auto semi = head.find(';');
  const std::string media = head.substr(0, semi);
  if (video) {
    if (media != "video/mp4" && media != "video/webm" && media != "video/x-matroska" && media != "video/quicktime" &&
        media != "video/x-msvideo" && media != "video/avi" && media != "application/octet-stream")
      throw IpcError(ErrorCode::bad_image, where + ": media type '" + media +
                                               "' is not a video this server reads (video/mp4, video/webm, "
                                               "video/x-matroska, video/quicktime, video/x-msvideo)");
  } else if (media != "image/png" && media != "image/jpeg" && media != "image/jpg" && media != "image/webp") {
    throw IpcError(ErrorCode::bad_image, where + ": media type '" + media +
                                             "' is not a picture this server reads (image/png, image/jpeg, image/webp)");
  }
  if (semi == std::string::npos || head.substr(semi + 1).find("base64") == std::string::npos)
    throw IpcError(ErrorCode::bad_image, where + ": only base64 data: URLs are read");
  const char* what = video ? "a video" : "a picture";
  const uint64_t limit = video ? limits.max_video_bytes : limits.max_image_bytes;
  const std::string_view b64 = url.substr(comma + 1);
  const uint64_t decoded = uint64_t(b64.size()) / 4 * 3 + 3;
  if (decoded - 3 > limit)
    throw IpcError(ErrorCode::too_large, where + ": " + what + " of about " + std::to_string(decoded - 3) +
                                             " bytes exceeds the limit of " + std::to_string(limit));
  std::vector<uint8_t> bytes;
  if (!decode_base64(b64, bytes)) throw IpcError(ErrorCode::bad_image, where + ": the data: URL is not valid base64");
  if (bytes.empty()) throw IpcError(ErrorCode::bad_image, where + ": the data: URL holds no bytes");
  if (bytes.size() > limit)
    throw IpcError(ErrorCode::too_large, where + ": " + what + " of " + std::to_string(bytes.size()) +
                                             " bytes exceeds the limit of " + std::to_string(limit));
  return bytes;
}

}  // namespace

bool decode_base64(std::string_view in, std::vector<uint8_t>& out) {
  out.clear();
  size_t n = in.size();
  while (n > 0 && in[n - 1] == '=' && in.size() - n < 2) --n;
  if (n % 4 == 1) return false;
  if (in.size() != n && (in.size() % 4) != 0) return false;   // padding only on a full quantum
  out.reserve(n / 4 * 3 + 2);
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; ++i) {
    const int v = b64_value(static_cast<unsigned char>(in[i]));
    if (v < 0) return false;
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(uint8_t((acc >> bits) & 0xff));
    }
  }
  // Leftover bits must be zero (a canonical encoding).
  return (acc & ((1u << bits) - 1)) == 0;
}

ChatMessages read_chat_messages(const nlohmann::json& messages, const Limits& limits) {
  auto bad = [](const std::string& m) { return IpcError(ErrorCode::bad_message, m); };
  if (!messages.is_array()) throw bad(std::string("messages: expected an array, got ") + type_name(messages));
  if (messages.empty()) throw bad("messages: empty");
  if (messages.size() > kMaxTurns)
    throw bad("messages: " + std::to_string(messages.size()) + " turns, at most " + std::to_string(kMaxTurns));
  ChatMessages out;
  uint64_t text_bytes = 0;
  auto add_text = [&](TurnPart part, Turn& turn, const std::string& where) {
    text_bytes += part.text.size();
    if (text_bytes > limits.max_prompt_bytes)
      throw IpcError(ErrorCode::too_large, where + ": the messages' text exceeds the limit of " +
                                               std::to_string(limits.max_prompt_bytes) + " bytes");
    turn.parts.push_back(std::move(part));
  };
  for (size_t t = 0; t < messages.size(); ++t) {
    const std::string where = "messages[" + std::to_string(t) + "]";
    const nlohmann::json& m = messages[t];
    if (!m.is_object()) throw bad(where + ": expected an object, got " + type_name(m));
    const auto role_it = m.find("role");
    if (role_it == m.end()) throw bad(where + ".role: missing");
    if (!role_it->is_string()) throw bad(where + ".role: expected a string, got " + type_name(*role_it));
    const std::string role = role_it->get<std::string>();
    Turn turn;
    if (role == "developer") turn.role = Role::system;
    else if (auto r = role_from_name(role)) turn.role = *r;
    else throw bad(where + ".role: '" + role + "' is not supported (system, developer, user, assistant)");
    const auto content_it = m.find("content");
    if (content_it == m.end() || content_it->is_null()) throw bad(where + ".content: missing");
    const nlohmann::json& content = *content_it;
    if (content.is_string()) {
      add_text(TurnPart::of_text(content.get<std::string>()), turn, where + ".content");
    } else if (content.is_array()) {
      if (content.size() > kMaxPartsPerTurn)
        throw bad(where + ".content: " + std::to_string(content.size()) + " parts, at most " +
                  std::to_string(kMaxPartsPerTurn));
      for (size_t p = 0; p < content.size(); ++p) {
        const std::string pw = where + ".content[" + std::to_string(p) + "]";
        const nlohmann::json& part = content[p];
        if (!part.is_object()) throw bad(pw + ": expected an object, got " + type_name(part));
        const auto type_it = part.find("type");
        if (type_it == part.end() || !type_it->is_string()) throw bad(pw + ".type: missing or not a string");
        const std::string type = type_it->get<std::string>();
        if (type == "text") {
          const auto text_it = part.find("text");
          if (text_it == part.end() || !text_it->is_string()) throw bad(pw + ".text: missing or not a string");
          add_text(TurnPart::of_text(text_it->get<std::string>()), turn, pw + ".text");
        } else if (type == "image_url" || type == "video_url") {
          const bool video = type == "video_url";
          const auto iu = part.find(type);
          if (iu == part.end()) throw bad(pw + "." + type + ": missing");
          std::string uw = pw + "." + type;
          const nlohmann::json* url = &*iu;
          if (iu->is_object()) {
            const auto u = iu->find("url");
            if (u == iu->end()) throw bad(uw + ".url: missing");
            url = &*u;
            uw += ".url";
          }
          if (!url->is_string()) throw bad(uw + ": expected a string, got " + type_name(*url));
          if (out.pictures.size() >= limits.max_images)
            throw IpcError(ErrorCode::too_large, pw + ": more than " + std::to_string(limits.max_images) +
                                                     " pictures and videos in one request");
          const std::string& s = url->get_ref<const std::string&>();
          PictureSource src;
          src.where = uw;
          src.video = video;
          if (s.size() >= 5 && lower(s.substr(0, 5)) == "data:") {
            src.kind = PictureSource::Kind::bytes;
            src.bytes = read_data_url(s, limits, uw, video);
          } else {
            if (s.empty()) throw bad(uw + ": empty");
            src.kind = PictureSource::Kind::location;
            src.location = s;
          }
          const int32_t index = int32_t(out.pictures.size());
          turn.parts.push_back(video ? TurnPart::of_video(index) : TurnPart::of_image(index));
          out.pictures.push_back(std::move(src));
        } else {
          throw bad(pw + ".type: '" + type + "' is not supported (text, image_url, video_url)");
        }
      }
    } else {
      throw bad(where + ".content: expected a string or an array of parts, got " + type_name(content));
    }
    out.turns.push_back(std::move(turn));
  }
  return out;
}

}  // namespace omni::ipc
