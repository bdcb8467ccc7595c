#include "model/generation.h"

#include <algorithm>

#include "util/error.h"

namespace omni {

const char* finish_reason_name(FinishReason r) noexcept {
  switch (r) {
    case FinishReason::none: return "none";
    case FinishReason::stop: return "stop";
    case FinishReason::length: return "length";
    case FinishReason::cancelled: return "cancelled";
    case FinishReason::deadline: return "deadline";
    case FinishReason::error: return "error";
  }
  return "error";
}

Generation::Generation(const tok::Tokenizer* tok, GenerationOptions opt)
    : opt_(std::move(opt)), sampler_(opt_.sampling) {
  if (opt_.max_tokens <= 0) throw Error("max_tokens must be positive");
  if (tok) stream_.emplace(*tok);
  else if (!opt_.stop_strings.empty()) throw Error("stop strings need a tokenizer");
  for (const auto& s : opt_.stop_strings) longest_stop_ = std::max(longest_stop_, s.size());
}

std::string Generation::next(const float* logits, int vocab) {
  if (finished()) throw Error("generation: next() after the answer ended");
  return push(sampler_.next(logits, vocab, tokens_));
}

std::string Generation::release(size_t upto) {
  std::string out = text_.substr(shown_, upto - shown_);
  shown_ = upto;
  return out;
}

std::string Generation::push(int32_t tok) {
  if (finished()) throw Error("generation: a token after the answer ended");
  tokens_.push_back(tok);
  if (std::find(opt_.stop_ids.begin(), opt_.stop_ids.end(), tok) != opt_.stop_ids.end()) {
    reason_ = FinishReason::stop;
    return flush_tail();
  }
  const size_t before = text_.size();
  if (stream_) text_ += stream_->push(tok);
  // A stop string can only end in the new bytes: search from where it could start.
  const size_t from = before >= longest_stop_ ? before - longest_stop_ + 1 : 0;
  size_t cut = std::string::npos;
  for (const auto& s : opt_.stop_strings) {
    if (s.empty()) continue;
    const size_t at = text_.find(s, std::min(from, text_.size()));
    if (at != std::string::npos) cut = std::min(cut, at);
  }
  if (cut != std::string::npos) {
    text_.resize(cut);
    reason_ = FinishReason::stop;
    return release(std::max(cut, shown_));
  }
  if (int(tokens_.size()) >= opt_.max_tokens) {
    reason_ = FinishReason::length;
    return flush_tail();
  }
  // Hold back the longest tail that is the start of some stop string. Stop strings are
  // whole UTF-8 text, so such a tail starts on a character boundary.
  size_t hold = 0;
  for (const auto& s : opt_.stop_strings)
    for (size_t n = std::min(s.size() - (s.empty() ? 0 : 1), text_.size() - shown_); n > hold; --n)
      if (text_.compare(text_.size() - n, n, s, 0, n) == 0) {
        hold = n;
        break;
      }
  return release(text_.size() - hold);
}

std::string Generation::flush_tail() {
  if (stream_) text_ += stream_->finish();
  // Held-back text that turned out not to be a stop string (the answer ended first).
  for (const auto& s : opt_.stop_strings) {
    if (s.empty()) continue;
    const size_t at = text_.find(s, shown_ >= longest_stop_ ? shown_ - longest_stop_ + 1 : 0);
    if (at != std::string::npos) text_.resize(std::max(at, shown_));
  }
  return release(text_.size());
}

std::string Generation::end(FinishReason why) {
  if (finished()) return "";
  reason_ = why;
  if (why == FinishReason::error) {
    text_.resize(shown_);
    return "";
  }
  return flush_tail();
}

}  // namespace omni
