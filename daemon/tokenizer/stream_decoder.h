#pragma once
// Incremental decoding for streaming generation: a token may end in the middle of
// a UTF-8 character (byte-level BPE splits them), so its bytes are held back until
// the character is complete. Concatenating all push() results and finish() gives
// exactly Tokenizer::decode of the same ids.
#include <cstdint>
#include <string>

#include "tokenizer/tokenizer.h"

namespace omni::tok {

class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok) : tok_(&tok) {}
  // Text that is complete after adding id (possibly empty); never partial UTF-8.
  std::string push(int32_t id);
  // Flushes what is held back (an unfinished character becomes U+FFFD).
  std::string finish();

 private:
  const Tokenizer* tok_;
  std::string pending_;  // at most 3 bytes: the start of an unfinished character
};

}  // namespace omni::tok
