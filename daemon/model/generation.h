#pragma once
// One request's generation state, the same for `omnid run`, `omnid dump` and the daemon's
// scheduler: the sampler, stop ids and stop strings, the streaming UTF-8 decode, the ids
// and text generated so far, and why it ended. The callers feed it logits rows; it says
// which token to feed back and which text may be shown now.
//
// Stop strings may span tokens, so text that could be the start of a stop string is held
// back until it is clear either way; nothing after a stop string (nor the stop string) is
// ever shown. A stop id ends the answer too; it counts as generated but adds no text.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/sampler.h"
#include "tokenizer/stream_decoder.h"

namespace omni {

enum class FinishReason : uint8_t { none, stop, length, cancelled, deadline, error };
const char* finish_reason_name(FinishReason r) noexcept;

struct GenerationOptions {
  SamplingParams sampling;
  int max_tokens = 512;
  std::vector<int32_t> stop_ids;
  std::vector<std::string> stop_strings;   // empty strings are ignored
};

class Generation {
 public:
  // Without a tokenizer (bare decoders, `omnid dump --tokens`) only ids are produced and
  // stop strings are refused.
  Generation(const tok::Tokenizer* tok, GenerationOptions opt);

  // Samples the next token from one logits row and takes it; returns the text that may
  // be shown now (possibly empty). After it, finished() tells whether to go on.
  std::string next(const float* logits, int vocab);
  // Takes `token` as the next one (a token chosen elsewhere); same return as next().
  std::string push(int32_t token);
  // Ends it from outside (cancelled, deadline, error, or length when the KV cache can take
  // no more); returns text held back that may still be shown (none after an error).
  std::string end(FinishReason why);

  bool finished() const { return reason_ != FinishReason::none; }
  FinishReason reason() const { return reason_; }
  const std::vector<int32_t>& tokens() const { return tokens_; }   // stop id included
  const std::string& text() const { return text_; }                // what was shown, in all
  int32_t last_token() const { return tokens_.empty() ? -1 : tokens_.back(); }
  int max_tokens() const { return opt_.max_tokens; }

 private:
  std::string release(size_t upto);   // shows text_[shown_, upto)
  std::string flush_tail();

  GenerationOptions opt_;
  Sampler sampler_;
  std::optional<tok::StreamDecoder> stream_;
  std::vector<int32_t> tokens_;
  std::string text_;          // decoded so far (cut at a stop string)
  size_t shown_ = 0;          // bytes of text_ already returned
  size_t longest_stop_ = 0;
  FinishReason reason_ = FinishReason::none;
};

}  // namespace omni
