#include "server/request_options.h"

#include <algorithm>
#include <climits>

namespace omni::server {

SamplingParams resolve_sampling(const SamplingParams& defaults, const ipc::Sampling& g) {
  SamplingParams sp = defaults;
  if (g.greedy) {
    sp = SamplingParams{};
    sp.greedy = true;
  } else {
    // What the client left unset keeps the model's default.
    if (g.temperature) sp.temperature = float(*g.temperature);
    // A top_k above the vocabulary keeps every token, as in transformers; clamped so it
    // stays a positive int.
    if (g.top_k) sp.top_k = int(std::min<uint64_t>(*g.top_k, uint64_t(INT32_MAX)));
    if (g.top_p) sp.top_p = float(*g.top_p);
    if (g.repetition_penalty) sp.repetition_penalty = float(*g.repetition_penalty);
    if (sp.temperature == 0.0f) {   // temperature 0 means greedy, as in most servers
      sp = SamplingParams{};
      sp.greedy = true;
    }
  }
  sp.seed = g.seed;
  try {
    sp.validate();
  } catch (const std::exception& e) {
    throw ipc::IpcError(ipc::ErrorCode::bad_message, std::string("sampling: ") + e.what());
  }
  return sp;
}

ipc::FinishReason wire_reason(FinishReason r) noexcept {
  switch (r) {
    case FinishReason::stop: return ipc::FinishReason::stop;
    case FinishReason::length: return ipc::FinishReason::length;
    case FinishReason::cancelled: return ipc::FinishReason::cancelled;
    case FinishReason::deadline: return ipc::FinishReason::deadline;
    case FinishReason::none:
    case FinishReason::error: break;
  }
  return ipc::FinishReason::error;
}

}  // namespace omni::server
