#pragma once
// OpenAI's chat-completions shape, both ways: a POST /v1/chat/completions body read into
// a sched::Request (every field checked, errors naming it), and the answer written as a
// chat.completion object or as chat.completion.chunk events (docs/http.md).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "ipc/limits.h"
#include "model/generation.h"
#include "sched/request.h"

namespace omni::server {

class ImageDirs;

struct ChatContext {
  std::string model_name;             // the loaded model: "model" must be it (or absent)
  SamplingParams default_sampling;    // what unset sampling fields keep
  ipc::Limits limits;
  const ImageDirs* image_dirs = nullptr;   // where file:// pictures may be; null: nowhere
};


struct ChatCompletion {
  sched::Request request;     // events and id left for the caller
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
};

// Throws HttpFailure: 400 for a body that is not JSON, a field of the wrong type or out
// of range, or a feature this server does not have (tools, logprobs, n > 1); 404
// model_not_found for another model; 413 over a size limit.
ChatCompletion parse_chat_completion(std::string_view body, const ChatContext& ctx);

// What every object of one completion repeats.
struct CompletionMeta {
  std::string id;      // "chatcmpl-<32 hex>"
  int64_t created = 0;  // Unix seconds
  std::string model;
};
CompletionMeta new_completion_meta(const std::string& model);

// "stop" or "length"; nullopt for the reasons that are not an answer (cancelled,
// deadline, error), which the caller reports as an error.
std::optional<std::string> openai_finish_reason(FinishReason r);

std::string completion_body(const CompletionMeta& m, const std::string& text, const std::string& finish_reason,
                            uint32_t prompt_tokens, uint32_t completion_tokens);
// One SSE event ("data: {...}\n\n"). `role`: the first chunk's delta.role; `content`
// unset: no content in the delta; `finish_reason` unset: null.
std::string chunk_event(const CompletionMeta& m, bool role, const std::optional<std::string>& content,
                        const std::optional<std::string>& finish_reason, bool include_usage);
std::string usage_event(const CompletionMeta& m, uint32_t prompt_tokens, uint32_t completion_tokens);
std::string error_event(const std::string& error_body);   // data: {"error": ...}
inline constexpr std::string_view kDoneEvent = "data: [DONE]\n\n";

// JSON text, with bytes that are not UTF-8 replaced rather than thrown on.
std::string dump_json(const nlohmann::json& j);

}  // namespace omni::server
