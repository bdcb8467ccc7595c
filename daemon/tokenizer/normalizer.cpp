#include "tokenizer/normalizer.h"

#include <utf8proc.h>

#include <cstdlib>
#include <memory>

#include "util/error.h"

namespace omni::tok {

std::string nfc(std::string_view text) {
  // Every code point below U+0300 is NFC-stable, and their UTF-8 lead bytes are
  // below 0xCC: skip utf8proc (which allocates) for such text.
  bool simple = true;
  for (unsigned char c : text) {
    if (c >= 0xCC) { simple = false; break; }
  }
  if (simple) return std::string(text);
  utf8proc_uint8_t* out = nullptr;
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                              static_cast<utf8proc_ssize_t>(text.size()), &out,
                              static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (n < 0) throw omni::Error(std::string("NFC normalization failed: ") + utf8proc_errmsg(n));
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> guard(out, &std::free);
  return std::string(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
}

Normalizer Normalizer::from_json(const nlohmann::json& j, const std::string& file) {
  Normalizer n;
  if (j.is_null()) return n;
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    throw omni::Error(file + ": \"normalizer\" must be null or an object with a \"type\"");
  const std::string type = j["type"];
  if (type == "NFC") {
    n.nfc_ = true;
  } else if (type == "Sequence") {
    if (!j.contains("normalizers") || !j["normalizers"].is_array())
      throw omni::Error(file + ": Sequence normalizer lacks a \"normalizers\" array");
    for (const auto& sub : j["normalizers"]) n.nfc_ |= from_json(sub, file).nfc_;
  } else {
    throw omni::Error(file + ": unsupported normalizer type \"" + type + "\" (supported: NFC, Sequence of NFC, none)");
  }
  return n;
}

void Normalizer::apply(std::string_view text, std::string& out) const {
  if (!nfc_) { out.append(text); return; }
  out += nfc(text);
}

}  // namespace omni::tok
