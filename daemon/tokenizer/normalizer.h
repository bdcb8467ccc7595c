#pragma once
// The tokenizer.json "normalizer": MiniCPM-V's Qwen-based checkpoints use NFC,
// Llama-3 uses none. Anything else is refused at load time.
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace omni::tok {

class Normalizer {
 public:
  // `file` names tokenizer.json in error messages.
  static Normalizer from_json(const nlohmann::json& j, const std::string& file);
  // Appends the normalized form of text (valid UTF-8) to out.
  void apply(std::string_view text, std::string& out) const;
  bool is_identity() const { return !nfc_; }

 private:
  bool nfc_ = false;
};

// NFC of valid UTF-8 text.
std::string nfc(std::string_view text);

}  // namespace omni::tok
