#pragma once
// One question answered start to end on a ChatModel: prepare, encode pictures,
// prefill, decode with streaming text. Used by `omnid run` and `omnid dump`; the
// daemon's scheduler runs the same steps interleaved across requests.
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "model/chat_model.h"
#include "model/generation.h"

namespace omni {

struct AnswerOptions {
  SamplingParams sampling;
  int max_tokens = 512;
  // max_tokens is only a cap, not the client's ask (an OpenAI request without max_tokens):
  // a prompt that leaves less room in the context gets what is left instead of a refusal.
  bool max_tokens_fits_context = false;
  std::vector<std::string> stop_strings;
  // Prompt rows with this id are padding, as in MiniCPM-V's chat(); -1: none; unset: the
  // model's (ChatModel::pad_id).
  std::optional<int32_t> pad_id;
  ipc::PromptOptions prompt;   // slicing and video settings of the prompt
};

struct Answer {
  std::string text;
  std::vector<int32_t> tokens;     // generated ids, the stop token included when one was hit
  FinishReason finish_reason = FinishReason::none;   // stop or length
};

// The generation settings of `opt` with the model's stop ids.
GenerationOptions generation_options(const ChatModel& model, const AnswerOptions& opt);

// Embeddings with the rows whose id is pad_id left out (see drop_pad_tokens).
kernels::Tensor drop_pad_rows(const kernels::Tensor& embeds, const std::vector<int32_t>& ids, int32_t pad_id);

// `on_text` receives the answer piece by piece (never half a UTF-8 character).
Answer answer(ChatModel& model, const std::vector<ImageInput>& images, const std::string& question,
              const AnswerOptions& opt, const std::function<void(const std::string&)>& on_text = {});

}  // namespace omni
