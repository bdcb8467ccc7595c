#include "server/openai_chat.h"

#include <chrono>
#include <cmath>
#include <random>

#include "ipc/chat_json.h"
#include "ipc/conversation.h"
#include "server/http_errors.h"
#include "server/http_image_files.h"
#include "server/request_options.h"

namespace omni::server {

namespace {

using json = nlohmann::json;
using ipc::ErrorCode;

[[noreturn]] void bad(const std::string& message) {
  throw HttpFailure(HttpError::from_code(ErrorCode::bad_message, message));
}

std::string got(const json& j) { return std::string(j.type_name()); }

// The field, or null when absent or null (OpenAI clients send null for "unset").
const json* field(const json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

bool get_bool(const json& body, const char* name, bool dflt) {
  const json* f = field(body, name);
  if (!f) return dflt;
  if (!f->is_boolean()) bad(std::string(name) + ": expected true or false, got " + got(*f));
  return f->get<bool>();
}

std::optional<double> get_number(const json& body, const char* name) {
  const json* f = field(body, name);
  if (!f) return std::nullopt;
  if (!f->is_number()) bad(std::string(name) + ": expected a number, got " + got(*f));
  const double v = f->get<double>();
  if (!std::isfinite(v)) bad(std::string(name) + ": not a finite number");
  return v;
}

// An integer in [lo, hi]; a number with a fraction is refused.
std::optional<int64_t> get_int(const json& body, const char* name, int64_t lo, int64_t hi) {
  const json* f = field(body, name);
  if (!f) return std::nullopt;
  if (f->is_number_unsigned()) {
    const uint64_t u = f->get<uint64_t>();
    if (u > uint64_t(hi)) bad(std::string(name) + ": " + std::to_string(u) + " is above " + std::to_string(hi));
    return int64_t(u);
  }
  if (!f->is_number_integer()) bad(std::string(name) + ": expected an integer, got " + got(*f));
  const int64_t v = f->get<int64_t>();
  if (v < lo || v > hi)
    bad(std::string(name) + ": " + std::to_string(v) + " is outside " + std::to_string(lo) + ".." + std::to_string(hi));
  return v;
}

// Features of the OpenAI API this server does not have: refused rather than silently
// ignored, so a client never mistakes the answer for one that honoured them.
void refuse_unsupported(const json& body) {
  for (const char* name : {"tools", "functions"})
    if (const json* f = field(body, name); f && !(f->is_array() && f->empty()))
      bad(std::string(name) + ": tool calls are not supported by this server");
  if (const json* f = field(body, "tool_choice"); f && !(f->is_string() && f->get<std::string>() == "none"))
    bad("tool_choice: tool calls are not supported by this server");
  if (const json* f = field(body, "function_call"); f && !(f->is_string() && f->get<std::string>() == "none"))
    bad("function_call: tool calls are not supported by this server");
  if (get_bool(body, "logprobs", false)) bad("logprobs: not supported by this server");
  if (field(body, "top_logprobs")) bad("top_logprobs: not supported by this server");
  if (field(body, "audio")) bad("audio: not supported by this server");
  if (const json* f = field(body, "modalities"); f && *f != json::array({"text"}))
    bad("modalities: only [\"text\"] is supported");
  if (const json* f = field(body, "response_format");
      f && !(f->is_object() && f->value("type", json()) == "text"))
    bad("response_format: only {\"type\": \"text\"} is supported");
  if (const json* f = field(body, "logit_bias"); f && !(f->is_object() && f->empty()))
    bad("logit_bias: not supported by this server");
  for (const char* name : {"frequency_penalty", "presence_penalty"})
    if (auto v = get_number(body, name); v && *v != 0.0)
      bad(std::string(name) + ": not supported by this server (repetition_penalty is)");
}

std::vector<std::string> read_stop(const json& body, const ipc::Limits& limits) {
  std::vector<std::string> out;
  const json* f = field(body, "stop");
  if (!f) return out;
  if (f->is_string()) {
    out.push_back(f->get<std::string>());
  } else if (f->is_array()) {
    if (f->size() > limits.max_stop_strings)
      bad("stop: " + std::to_string(f->size()) + " strings, at most " + std::to_string(limits.max_stop_strings));
    for (size_t i = 0; i < f->size(); ++i) {
      if (!(*f)[i].is_string()) bad("stop[" + std::to_string(i) + "]: expected a string, got " + got((*f)[i]));
      out.push_back((*f)[i].get<std::string>());
    }
  } else {
    bad("stop: expected a string or an array of strings, got " + got(*f));
  }
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i].empty()) bad("stop[" + std::to_string(i) + "]: empty");
    if (out[i].size() > 1024) bad("stop[" + std::to_string(i) + "]: longer than 1024 bytes");
  }
  return out;
}

// Nesting deeper than any chat request needs is refused before parsing: a body of
// "[[[[..." would otherwise become that deep a tree.
void check_depth(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) bad("the body nests deeper than " + std::to_string(max_depth) + " levels");
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

}  // namespace

ChatCompletion parse_chat_completion(std::string_view text, const ChatContext& ctx) {
  check_depth(text, 32);
  json body;
  try {
    body = json::parse(text);
  } catch (const json::parse_error& e) {
    bad("the body is not valid JSON (at byte " + std::to_string(e.byte) + ")");
  }
  if (!body.is_object()) bad("the body must be a JSON object, got " + got(body));

  if (const json* m = field(body, "model")) {
    if (!m->is_string()) bad("model: expected a string, got " + got(*m));
    if (m->get<std::string>() != ctx.model_name)
      throw HttpFailure(HttpError::model_not_found("model: '" + m->get<std::string>() +
                                                   "' is not served here; this daemon serves '" + ctx.model_name + "'"));
  }
  refuse_unsupported(body);
  if (auto n = get_int(body, "n", 1, 1 << 20); n && *n != 1) bad("n: only 1 choice per request is supported");

  ChatCompletion out;
  sched::Request& r = out.request;
  const json* messages = field(body, "messages");
  if (!messages) bad("messages: missing");
  ipc::ChatMessages chat;
  try {
    chat = ipc::read_chat_messages(*messages, ctx.limits);
  } catch (const ipc::IpcError& e) {
    throw HttpFailure(HttpError::from_code(e.code(), e.what()));
  }
  for (size_t i = 0; i < chat.pictures.size(); ++i) {
    ipc::PictureSource& p = chat.pictures[i];
    if (p.kind == ipc::PictureSource::Kind::bytes) {
      r.images.push_back(ImageInput::from_bytes(p.where, std::move(p.bytes)));
    } else {
      static const ImageDirs none({});   // no folders: only says why a location is not read
      const ImageDirs& dirs = ctx.image_dirs ? *ctx.image_dirs : none;
      const uint64_t limit = p.video ? ctx.limits.max_video_bytes : ctx.limits.max_image_bytes;
      r.images.push_back(ImageInput::from_bytes(p.where, dirs.read(p.location, limit, p.where)));
    }
    r.images.back().video = p.video;
  }
  r.messages = std::move(chat.turns);

  out.stream = get_bool(body, "stream", false);
  if (const json* so = field(body, "stream_options")) {
    if (!so->is_object()) bad("stream_options: expected an object, got " + got(*so));
    out.include_usage = get_bool(*so, "include_usage", false);
  }

  // MiniCPM-V's chat() settings, as extra fields (the Python client's extra_body).
  if (auto v = get_int(body, "max_slice_nums", 1, ipc::kMaxSliceNums)) r.prompt.max_slice_nums = uint32_t(*v);
  if (field(body, "use_image_id")) r.prompt.use_image_id = get_bool(body, "use_image_id", false);
  if (field(body, "enable_thinking")) r.prompt.enable_thinking = get_bool(body, "enable_thinking", false);
  // Video sampling (docs/video.md), as extra fields too.
  if (auto v = get_number(body, "video_fps")) r.prompt.video_fps = *v;
  if (auto v = get_int(body, "video_max_frames", 1, ipc::kMaxVideoFrames)) r.prompt.video_max_frames = uint32_t(*v);
  if (auto v = get_int(body, "video_max_packing", 1, ipc::kMaxVideoPacking)) r.prompt.video_max_packing = uint32_t(*v);
  if (auto v = get_int(body, "video_max_slice_nums", 1, ipc::kMaxSliceNums))
    r.prompt.video_max_slice_nums = uint32_t(*v);
  try {
    ipc::validate_conversation(r.messages, r.images.size(), r.prompt);
  } catch (const ipc::IpcError& e) {
    throw HttpFailure(HttpError::from_code(e.code(), e.what()));
  }

  const int64_t max_new = int64_t(ctx.limits.max_new_tokens);
  // Unset: OpenAI's "the rest of the context", up to max_new_tokens; the engine, which
  // knows the prompt's length, cuts it to what the context leaves (max_tokens_fits_context).
  // A client's own max_tokens is an ask: over the context it is refused (too_large).
  int64_t max_tokens = max_new;
  r.options.max_tokens_fits_context = true;
  if (auto v = get_int(body, "max_tokens", 1, max_new)) {
    max_tokens = *v;
    r.options.max_tokens_fits_context = false;
  }
  if (auto v = get_int(body, "max_completion_tokens", 1, max_new)) {   // the newer name wins
    max_tokens = *v;
    r.options.max_tokens_fits_context = false;
  }
  r.options.max_tokens = int(max_tokens);
  r.options.stop_strings = read_stop(body, ctx.limits);

  ipc::Sampling s;
  if (auto v = get_number(body, "temperature")) {
    if (*v < 0 || *v > 2) bad("temperature: " + std::to_string(*v) + " is outside 0..2");
    s.temperature = *v;
  }
  if (auto v = get_number(body, "top_p")) {
    if (*v <= 0 || *v > 1) bad("top_p: " + std::to_string(*v) + " is outside (0, 1]");
    s.top_p = *v;
  }
  if (auto v = get_int(body, "top_k", 0, INT32_MAX)) s.top_k = uint32_t(*v);   // vLLM's extra field
  if (auto v = get_number(body, "repetition_penalty")) {
    if (*v <= 0) bad("repetition_penalty: must be above 0");
    s.repetition_penalty = *v;
  }
  if (auto v = get_int(body, "seed", INT64_MIN, INT64_MAX)) s.seed = uint64_t(*v);
  try {
    r.options.sampling = resolve_sampling(ctx.default_sampling, s);
  } catch (const ipc::IpcError& e) {
    throw HttpFailure(HttpError::from_code(e.code(), e.what()));
  }
  return out;
}

CompletionMeta new_completion_meta(const std::string& model) {
  // Unique enough to tell completions apart in logs; not a secret.
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* digits = "0123456789abcdef";
  std::string id = "chatcmpl-";
  for (int i = 0; i < 2; ++i) {
    uint64_t v = rng();
    for (int k = 0; k < 16; ++k, v >>= 4) id += digits[v & 15];
  }
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return {id, std::chrono::duration_cast<std::chrono::seconds>(now).count(), model};
}

std::optional<std::string> openai_finish_reason(FinishReason r) {
  switch (wire_reason(r)) {
    case ipc::FinishReason::stop: return "stop";
    case ipc::FinishReason::length: return "length";
    case ipc::FinishReason::cancelled:
    case ipc::FinishReason::deadline:
    case ipc::FinishReason::error: break;
  }
  return std::nullopt;
}

std::string dump_json(const nlohmann::json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string completion_body(const CompletionMeta& m, const std::string& text, const std::string& finish_reason,
                            uint32_t prompt_tokens, uint32_t completion_tokens) {
  json j = {{"id", m.id},
            {"object", "chat.completion"},
            {"created", m.created},
            {"model", m.model},
            {"choices",
             json::array({{{"index", 0},
                           {"message", {{"role", "assistant"}, {"content", text}}},
                           {"logprobs", nullptr},
                           {"finish_reason", finish_reason}}})},
            {"usage",
             {{"prompt_tokens", prompt_tokens},
              {"completion_tokens", completion_tokens},
              {"total_tokens", prompt_tokens + completion_tokens}}}};
  return dump_json(j);
}

std::string chunk_event(const CompletionMeta& m, bool role, const std::optional<std::string>& content,
                        const std::optional<std::string>& finish_reason, bool include_usage) {
  json delta = json::object();
  if (role) delta["role"] = "assistant";
  if (content) delta["content"] = *content;
  json choice = {{"index", 0}, {"delta", delta}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
  if (finish_reason) choice["finish_reason"] = *finish_reason;
  json j = {{"id", m.id},
            {"object", "chat.completion.chunk"},
            {"created", m.created},
            {"model", m.model},
            {"choices", json::array({choice})}};
  if (include_usage) j["usage"] = nullptr;   // as OpenAI: null on every chunk but the last
  return "data: " + dump_json(j) + "\n\n";
}

std::string usage_event(const CompletionMeta& m, uint32_t prompt_tokens, uint32_t completion_tokens) {
  json j = {{"id", m.id},
            {"object", "chat.completion.chunk"},
            {"created", m.created},
            {"model", m.model},
            {"choices", json::array()},
            {"usage",
             {{"prompt_tokens", prompt_tokens},
              {"completion_tokens", completion_tokens},
              {"total_tokens", prompt_tokens + completion_tokens}}}};
  return "data: " + dump_json(j) + "\n\n";
}

std::string error_event(const std::string& error_body) { return "data: " + error_body + "\n\n"; }

}  // namespace omni::server
