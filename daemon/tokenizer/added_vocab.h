#pragma once
// tokenizer.json "added_tokens" (special tokens such as <|im_start|> and extra
// ones such as <think>). They are cut out of the text before normalization and
// pre-tokenization, leftmost-longest first, as Hugging Face's AddedVocabulary does.
#include <nlohmann/json.hpp>
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace omni::tok {

struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool special = false;
  bool normalized = false;  // matched on normalized text rather than on the input
  bool lstrip = false, rstrip = false;
};

// A piece of text after added-token matching: either a token or a stretch of text.
struct Segment {
  int32_t id;  // -1 for text
  size_t offset, length;
};

class AddedVocab {
 public:
  static AddedVocab from_json(const nlohmann::json& tokens, const std::string& file);

  // Splits text on the tokens whose `normalized` flag equals `normalized`. `literal`:
  // sorted, disjoint [begin, end) byte ranges of text where special tokens are not
  // matched (a chat turn's content: its "<|im_end|>" is text, not a marker).
  void split(std::string_view text, bool normalized, std::vector<Segment>& out,
             const std::vector<std::pair<size_t, size_t>>* literal = nullptr) const;

  const std::vector<AddedToken>& tokens() const { return tokens_; }
  bool has(bool normalized) const { return normalized ? any_normalized_ : any_raw_; }

 private:
  std::vector<AddedToken> tokens_;
  std::array<std::vector<uint32_t>, 256> by_first_byte_;  // indices, longest first
  bool any_normalized_ = false, any_raw_ = false;
};

}  // namespace omni::tok
