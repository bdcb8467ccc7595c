#pragma once
// The text tokenizer of a checkpoint, loaded from its Hugging Face tokenizer.json
// and tokenizer_config.json. Encoding gives the same ids as Hugging Face
// tokenizers' encode(add_special_tokens=False); decoding matches its
// decode(skip_special_tokens=False). Thread-safe after load; cheap to copy.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace omni::tok {

class Tokenizer {
 public:
  // Reads DIR/tokenizer.json (required) and DIR/tokenizer_config.json (optional:
  // without it there is no BOS/EOS). Throws omni::Error naming the file and problem.
  static Tokenizer load(const std::string& model_dir);
  // Same, from explicit files; config_file may be empty.
  static Tokenizer load_files(const std::string& tokenizer_file, const std::string& config_file);

  // Ids of text; no BOS is added; added/special tokens in the text are matched.
  // Ill-formed UTF-8 in text is read as U+FFFD.
  std::vector<int32_t> encode(std::string_view text) const;
  // The same, but special tokens are not matched where they would overlap a `literal`
  // range (sorted, disjoint [begin, end) byte offsets): a chat prompt's turn contents,
  // so a user who writes "<|im_end|>" gets those characters as text, as Hugging Face's
  // split_special_tokens does for a whole string. Everything else (the merges across a
  // range's edges included) is as encode() of the whole text.
  std::vector<int32_t> encode(std::string_view text, const std::vector<std::pair<size_t, size_t>>& literal) const;
  // Text of ids, special tokens kept; ill-formed UTF-8 becomes U+FFFD. Ids with no
  // token (e.g. the padding rows of an output layer) decode to nothing, as in HF.
  std::string decode(const std::vector<int32_t>& ids) const;

  std::optional<int32_t> token_id(std::string_view token) const;  // token as spelled in tokenizer.json
  std::string token_text(int32_t id) const;                      // "" when id has no token
  // The raw bytes id stands for when decoded (may be part of a UTF-8 character).
  std::string_view token_bytes(int32_t id) const;
  bool is_special(int32_t id) const;
  size_t vocab_size() const;  // one past the largest id, added tokens included

  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;

  struct Impl;

 private:
  std::shared_ptr<const Impl> impl_;
};

}  // namespace omni::tok
