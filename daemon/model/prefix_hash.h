#pragma once
// What identifies a KV block's content, for prefix reuse (model/kv_pool.h): the chained
// SHA-256 of every row up to the block's end. A text row is its token id. A picture row
// is the full-width SHA-256 of the picture's bytes and slicing settings (ChatPrompt's
// cache_key) plus the row's index within the picture, never the placeholder id it sits
// on: two pictures of the same size have the same placeholder ids, and a short or
// placeholder-based hash would hand one picture's KV to the other.
#include <cstdint>
#include <string>
#include <vector>

#include "model/sha256.h"

namespace omni {

struct ChatPrompt;

struct RowKey {
  int32_t token = 0;    // text rows
  int32_t image = -1;   // picture rows: which picture of the prompt
  int32_t row = 0;      // and which of its rows
};

class PrefixHasher {
 public:
  explicit PrefixHasher(std::vector<Sha256> image_digests = {});
  // The rows of a prompt in order, pad rows (id == pad_id, as drop_pad_rows) left out.
  static PrefixHasher for_prompt(const ChatPrompt& prompt, int32_t pad_id);

  void push_token(int32_t id) { rows_.push_back({id, -1, 0}); }
  int64_t rows() const { return int64_t(rows_.size()); }
  const RowKey& row(int64_t i) const { return rows_[size_t(i)]; }
  // Hashes of the first n full blocks (n <= rows() / kBlockTokens), computed once each.
  const std::vector<Sha256>& block_hashes(int64_t n);
  // Last row (exclusive end) of each picture in rows(); 0 for a picture with no rows.
  std::vector<int64_t> image_ends() const;

 private:
  std::vector<Sha256> images_;
  std::vector<RowKey> rows_;
  std::vector<Sha256> hashes_;
};

}  // namespace omni
