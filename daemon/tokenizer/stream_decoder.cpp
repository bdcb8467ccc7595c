#include "tokenizer/stream_decoder.h"

#include "tokenizer/utf8.h"

namespace omni::tok {

std::string StreamDecoder::push(int32_t id) {
  pending_ += tok_->token_bytes(id);
  std::string out;
  const size_t tail = append_utf8_lossy(pending_, out, /*keep_tail=*/true);
  pending_.erase(0, pending_.size() - tail);
  return out;
}

std::string StreamDecoder::finish() {
  std::string out;
  append_utf8_lossy(pending_, out);
  pending_.clear();
  return out;
}

}  // namespace omni::tok
