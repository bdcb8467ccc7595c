#pragma once
// Byte-level BPE (tokenizer.json "model" of type BPE). Words are raw bytes; the
// vocabulary's byte-level spellings are translated once at load.
#include <nlohmann/json.hpp>
#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace omni::tok {

class Bpe {
 public:
  // Reads model.vocab and model.merges; `file` names tokenizer.json in errors.
  static Bpe from_json(const nlohmann::json& model, const std::string& file);

  Bpe() = default;
  Bpe(Bpe&& o) noexcept;
  Bpe& operator=(Bpe&&) = delete;

  // Appends the ids of one pre-tokenized word (raw bytes).
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

  // Vocabulary entries as written in tokenizer.json (byte-level spelling), by id.
  const std::vector<std::string>& tokens() const { return tokens_; }

 private:
  void merge(std::string_view word, std::vector<int32_t>& out) const;

  struct StrHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using StrMap = std::unordered_map<std::string, int32_t, StrHash, std::equal_to<>>;

  std::vector<std::string> tokens_;
  StrMap bytes_to_id_;                  // raw bytes of each entry -> id
  std::array<int32_t, 256> byte_id_{};  // single-byte entries
  // (left id << 32 | right id) -> (rank, merged id)
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;
  bool ignore_merges_ = false;

  // Per-word results: text repeats, so most words are looked up, not merged.
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StrHash, std::equal_to<>> cache_;
};

}  // namespace omni::tok
