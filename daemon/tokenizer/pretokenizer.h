#pragma once
// The tokenizer.json "pre_tokenizer": cuts normalized text into words before BPE.
// Supported: Split (regex or literal, "Isolated" behaviour), ByteLevel (with or
// without its GPT-2 regex) and Sequence of these. Regexes run on PCRE2 with JIT.
#include <nlohmann/json.hpp>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace omni::tok {

class Regex;

class PreTokenizer {
 public:
  static PreTokenizer from_json(const nlohmann::json& j, const std::string& file);

  // Appends the pieces of text as (offset, length) pairs, in order, covering text.
  void split(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;

  bool add_prefix_space() const { return add_prefix_space_; }
  bool byte_level() const { return byte_level_; }

 private:
  void add(const nlohmann::json& j, const std::string& file);
  std::vector<std::shared_ptr<const Regex>> steps_;
  bool add_prefix_space_ = false;
  bool byte_level_ = false;
};

// Rewrites an Oniguruma pattern (what Hugging Face runs) into PCRE2 syntax where the
// two differ: Oniguruma's \s is Unicode White_Space, PCRE2's also takes U+180E.
std::string onig_to_pcre2(const std::string& pattern);

}  // namespace omni::tok
