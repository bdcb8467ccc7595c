// C API over omni::sdk::Client. Every entry catches everything.
#include "omni_client.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <utility>

#include "sdk/client.h"
#include "sdk/status_map.h"

struct omni_client {
  omni::sdk::Client client;
  explicit omni_client(omni::sdk::ClientOptions o) : client(std::move(o)) {}
};

namespace {
thread_local std::string g_last_error;

omni_status fail(omni_status s, const std::string& msg) {
  g_last_error = msg;
  return s;
}

template <typename F>
omni_status guarded(F&& f) noexcept {
  try {
    g_last_error.clear();
    return f();
  } catch (const omni::sdk::Error& e) {
    return fail(omni::sdk::to_status(e.code()), e.what());
  } catch (const omni::ipc::IpcError& e) {
    return fail(omni::sdk::to_status(e.code()), e.what());
  } catch (const std::bad_alloc&) {
    return fail(OMNI_E_NO_MEMORY, "out of memory");
  } catch (const std::exception& e) {
    return fail(OMNI_E_INTERNAL, e.what());
  } catch (...) {
    return fail(OMNI_E_INTERNAL, "unknown error");
  }
}

// NaN fails every range test, so without this check `temperature >= 0` would be false
// and a NaN would silently mean "the model's default"; infinities are no value either.
omni_status check_sampling(const omni_generate_params& p) {
  const std::pair<const char*, float> fields[] = {
      {"temperature", p.temperature}, {"top_p", p.top_p}, {"repetition_penalty", p.repetition_penalty}};
  for (const auto& [name, v] : fields)
    if (!std::isfinite(v))
      return fail(OMNI_E_INVALID_ARG, std::string("params->") + name + " is " + std::to_string(v) +
                                          ": sampling values must be finite (negative means the model's default)");
  return OMNI_OK;
}
}  // namespace

extern "C" {

void omni_generate_params_init(omni_generate_params* p) {
  if (!p) return;
  std::memset(p, 0, sizeof(*p));
  p->max_tokens = 256;
  p->temperature = -1.0f;   // the model's defaults, filled in by the daemon
  p->top_k = OMNI_TOP_K_MODEL_DEFAULT;
  p->top_p = -1.0f;
  p->repetition_penalty = -1.0f;
}

omni_status omni_client_create(const char* socket_path, const char* client_name, omni_client** out) {
  return guarded([&] {
    if (!socket_path || !out) return fail(OMNI_E_INVALID_ARG, "socket_path and out are required");
    *out = nullptr;
    omni::sdk::ClientOptions o;
    o.socket_path = socket_path;
    if (client_name) o.client_name = client_name;
    *out = new omni_client(std::move(o));
    return OMNI_OK;
  });
}

void omni_client_destroy(omni_client* c) {
  try {
    delete c;
  } catch (...) {
  }
}

uint64_t omni_client_next_request_id(omni_client* c) { return c ? c->client.next_request_id() : 0; }

void omni_chat_init(omni_chat* chat) {
  if (!chat) return;
  std::memset(chat, 0, sizeof(*chat));
  chat->struct_size = sizeof(omni_chat);
  chat->use_image_id = -1;
  chat->enable_thinking = -1;
}

namespace {

// The conversation of `in`, read only as far as its struct_size declares.
omni_status read_chat(const omni_chat* in, size_t n_images, omni::sdk::GenerateRequest& r) {
  omni_chat chat;
  omni_chat_init(&chat);
  constexpr size_t kMin = offsetof(omni_chat, n_messages) + sizeof(size_t);
  if (in->struct_size < kMin) return fail(OMNI_E_INVALID_ARG, "chat.struct_size " + std::to_string(in->struct_size) +
                                                                   " is below its first layout (" + std::to_string(kMin) + ")");
  std::memcpy(&chat, in, std::min(in->struct_size, sizeof(chat)));
  chat.struct_size = sizeof(chat);
  if (chat.n_messages == 0 || !chat.messages) return fail(OMNI_E_INVALID_ARG, "chat.messages is empty or NULL");
  for (size_t i = 0; i < chat.n_messages; ++i) {
    const omni_message& m = chat.messages[i];
    const std::string where = "chat.messages[" + std::to_string(i) + "]";
    omni::ipc::Turn t;
    switch (m.role) {
      case OMNI_ROLE_SYSTEM: t.role = omni::ipc::Role::system; break;
      case OMNI_ROLE_USER: t.role = omni::ipc::Role::user; break;
      case OMNI_ROLE_ASSISTANT: t.role = omni::ipc::Role::assistant; break;
      default: return fail(OMNI_E_INVALID_ARG, where + ".role " + std::to_string(m.role) + " is not an omni_role");
    }
    if (m.n_parts && !m.parts) return fail(OMNI_E_INVALID_ARG, where + ".parts is NULL");
    for (size_t k = 0; k < m.n_parts; ++k) {
      const omni_message_part& part = m.parts[k];
      if (part.text) {
        t.parts.push_back(omni::ipc::TurnPart::of_text(part.text));
      } else {
        if (part.image >= n_images)
          return fail(OMNI_E_INVALID_ARG, where + ".parts[" + std::to_string(k) + "].image " +
                                              std::to_string(part.image) + " of " + std::to_string(n_images) + " images");
        t.parts.push_back(omni::ipc::TurnPart::of_image(int32_t(part.image)));
      }
    }
    r.messages.push_back(std::move(t));
  }
  if (chat.system) r.system = chat.system;
  if (chat.max_slice_nums) r.options.max_slice_nums = chat.max_slice_nums;
  if (chat.use_image_id >= 0) r.options.use_image_id = chat.use_image_id != 0;
  if (chat.enable_thinking >= 0) r.options.enable_thinking = chat.enable_thinking != 0;
  if (chat.video_fps != 0) r.options.video_fps = chat.video_fps;
  if (chat.video_max_frames) r.options.video_max_frames = chat.video_max_frames;
  if (chat.video_max_packing) r.options.video_max_packing = chat.video_max_packing;
  if (chat.video_max_slice_nums) r.options.video_max_slice_nums = chat.video_max_slice_nums;
  return OMNI_OK;
}

omni_status run_generate(omni_client* c, const omni_generate_params* p, const omni_chat* chat, omni_token_fn on_token,
                         void* user, omni_done* out_done) {
  return guarded([&] {
    if (!c || !p) return fail(OMNI_E_INVALID_ARG, "client and params are required");
    if (!chat && !p->prompt) return fail(OMNI_E_INVALID_ARG, "params->prompt is required");
    if (p->n_images && !p->images) return fail(OMNI_E_INVALID_ARG, "images is NULL");
    if (p->n_stop && !p->stop) return fail(OMNI_E_INVALID_ARG, "stop is NULL");
    if (const omni_status st = check_sampling(*p); st != OMNI_OK) return st;
    omni::sdk::GenerateRequest r;
    r.request_id = p->request_id;
    if (chat) {
      if (const omni_status st = read_chat(chat, p->n_images, r); st != OMNI_OK) return st;
    } else {
      r.prompt = p->prompt;
    }
    r.max_tokens = p->max_tokens ? p->max_tokens : 256;
    if (p->temperature >= 0) r.sampling.temperature = p->temperature;
    if (p->top_k != OMNI_TOP_K_MODEL_DEFAULT) r.sampling.top_k = p->top_k;
    if (p->top_p > 0) r.sampling.top_p = p->top_p;
    if (p->repetition_penalty > 0) r.sampling.repetition_penalty = p->repetition_penalty;
    r.sampling.seed = p->seed;
    r.sampling.greedy = p->greedy != 0;
    r.deadline_ms = p->deadline_ms;
    for (size_t i = 0; i < p->n_stop; ++i) {
      if (!p->stop[i]) return fail(OMNI_E_INVALID_ARG, "stop string is NULL");
      r.stop.emplace_back(p->stop[i]);
    }
    for (size_t i = 0; i < p->n_images; ++i) {
      const omni_image& im = p->images[i];
      if (!im.data || !im.size) return fail(OMNI_E_INVALID_ARG, "image without data");
      std::span<const uint8_t> bytes(static_cast<const uint8_t*>(im.data), im.size);
      if (im.format == OMNI_IMAGE_RGB)
        r.images.push_back(omni::sdk::Image::from_rgb(bytes, im.width, im.height));
      else if (im.format == OMNI_IMAGE_ENCODED)
        r.images.push_back(omni::sdk::Image::from_bytes(bytes));
      else if (im.format == OMNI_IMAGE_VIDEO)
        r.images.push_back(omni::sdk::Image::video_from_bytes(bytes));
      else
        return fail(OMNI_E_INVALID_ARG, "unknown image format");
    }
    auto cb = [&](const omni::ipc::Token& t) {
      if (on_token) on_token(user, t.id, t.text.c_str(), t.text.size(), t.token);
    };
    omni::ipc::Done d = c->client.generate(r, cb);
    if (out_done) {
      std::memset(out_done, 0, sizeof(*out_done));
      out_done->request_id = d.id;
      std::strncpy(out_done->finish_reason, omni::ipc::finish_reason_name(d.reason), sizeof(out_done->finish_reason) - 1);
      out_done->prompt_tokens = d.prompt_tokens;
      out_done->completion_tokens = d.completion_tokens;
      out_done->image_tokens = d.image_tokens;
      out_done->queue_ms = d.timings.queue_ms;
      out_done->prefill_ms = d.timings.prefill_ms;
      out_done->decode_ms = d.timings.decode_ms;
      out_done->total_ms = d.timings.total_ms;
    }
    if (d.reason == omni::ipc::FinishReason::error) g_last_error = std::string(omni::ipc::error_code_name(d.error_code)) + ": " + d.error_message;
    return OMNI_OK;
  });
}

}  // namespace

omni_status omni_client_generate(omni_client* c, const omni_generate_params* p, omni_token_fn on_token, void* user,
                                 omni_done* out_done) {
  return run_generate(c, p, nullptr, on_token, user, out_done);
}

omni_status omni_client_chat(omni_client* c, const omni_generate_params* p, const omni_chat* chat,
                             omni_token_fn on_token, void* user, omni_done* out_done) {
  if (!chat) return guarded([&] { return fail(OMNI_E_INVALID_ARG, "chat is NULL"); });
  return run_generate(c, p, chat, on_token, user, out_done);
}

omni_status omni_client_cancel(omni_client* c, uint64_t request_id) {
  return guarded([&] {
    if (!c) return fail(OMNI_E_INVALID_ARG, "client is NULL");
    c->client.cancel(request_id);
    return OMNI_OK;
  });
}

omni_status omni_client_status_json(omni_client* c, char** out_json) {
  return guarded([&] {
    if (!c || !out_json) return fail(OMNI_E_INVALID_ARG, "client and out_json are required");
    *out_json = nullptr;
    const std::string j = omni::sdk::status_to_json(c->client.status());
    char* s = static_cast<char*>(std::malloc(j.size() + 1));
    if (!s) return fail(OMNI_E_NO_MEMORY, "out of memory");
    std::memcpy(s, j.c_str(), j.size() + 1);
    *out_json = s;
    return OMNI_OK;
  });
}

void omni_string_free(char* s) { std::free(s); }

const char* omni_last_error(void) { return g_last_error.c_str(); }

const char* omni_status_name(omni_status s) {
  switch (s) {
    case OMNI_OK: return "ok";
    case OMNI_E_INVALID_ARG: return "invalid_arg";
    case OMNI_E_UNAVAILABLE: return "unavailable";
    case OMNI_E_PROTOCOL: return "protocol";
    case OMNI_E_TOO_LARGE: return "too_large";
    case OMNI_E_UNSUPPORTED_VERSION: return "unsupported_version";
    case OMNI_E_BUSY: return "busy";
    case OMNI_E_NOT_ALLOWED: return "not_allowed";
    case OMNI_E_BAD_IMAGE: return "bad_image";
    case OMNI_E_TIMEOUT: return "timeout";
    case OMNI_E_INTERNAL: return "internal";
    case OMNI_E_NOT_READY: return "not_ready";
    case OMNI_E_NO_MEMORY: return "no_memory";
  }
  return "unknown";
}

}  // extern "C"
