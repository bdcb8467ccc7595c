// libomni_plugin.so: the function table over omni::sdk::Client.
// Every table function is noexcept in effect: all exceptions are caught here.
#include "omni_plugin.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "request_reader.h"
#include "sdk/client.h"
#include "sdk/status_map.h"

struct omni_plugin_client {
  omni::sdk::Client client;
  explicit omni_plugin_client(omni::sdk::ClientOptions o) : client(std::move(o)) {}
};

namespace {

thread_local std::string t_last_error;

int32_t set_error(int32_t s, std::string msg) {
  t_last_error = std::move(msg);
  return s;
}

template <typename F>
int32_t guarded(F&& f) noexcept {
  try {
    t_last_error.clear();
    return f();
  } catch (const omni::sdk::Error& e) {
    return set_error(omni::sdk::to_status(e.code()), e.what());
  } catch (const omni::ipc::IpcError& e) {
    return set_error(omni::sdk::to_status(e.code()), e.what());
  } catch (const std::bad_alloc&) {
    return set_error(OMNI_PLUGIN_E_NO_MEMORY, "out of memory");
  } catch (const std::exception& e) {
    return set_error(OMNI_PLUGIN_E_INTERNAL, e.what());
  } catch (...) {
    return set_error(OMNI_PLUGIN_E_INTERNAL, "unknown error");
  }
}

const char* p_version() { return "0.2.0 (protocol 1.1, plugin ABI 1)"; }

const char* p_status_name(int32_t s) {
  switch (s) {
    case OMNI_PLUGIN_OK: return "ok";
    case OMNI_PLUGIN_E_INVALID_ARG: return "invalid_arg";
    case OMNI_PLUGIN_E_UNAVAILABLE: return "unavailable";
    case OMNI_PLUGIN_E_PROTOCOL: return "protocol";
    case OMNI_PLUGIN_E_TOO_LARGE: return "too_large";
    case OMNI_PLUGIN_E_UNSUPPORTED_VERSION: return "unsupported_version";
    case OMNI_PLUGIN_E_BUSY: return "busy";
    case OMNI_PLUGIN_E_NOT_ALLOWED: return "not_allowed";
    case OMNI_PLUGIN_E_BAD_IMAGE: return "bad_image";
    case OMNI_PLUGIN_E_TIMEOUT: return "timeout";
    case OMNI_PLUGIN_E_INTERNAL: return "internal";
    case OMNI_PLUGIN_E_NOT_READY: return "not_ready";
    case OMNI_PLUGIN_E_NO_MEMORY: return "no_memory";
    default: return "unknown";
  }
}

const char* p_last_error() { return t_last_error.c_str(); }

void p_request_init(omni_plugin_request* r) {
  if (r) omni::plugin::init_request(*r);
}

void p_image_init(omni_plugin_image* im) {
  if (im) omni::plugin::init_image(*im);
}

void p_chat_init(omni_plugin_chat* c) {
  if (c) omni::plugin::init_chat(*c);
}

// One image the reader accepted, as the SDK sends it. A path is read here, refused
// before reading when it is not a regular file or exceeds max_file_bytes.
omni::sdk::Image to_sdk_image(const omni_plugin_image& im, const omni::ipc::Limits& limits) {
  const bool video = im.format == OMNI_PLUGIN_IMAGE_VIDEO;
  if (!im.data)
    return video ? omni::sdk::Image::video_from_file(im.path, limits.max_video_bytes)
                 : omni::sdk::Image::from_file(im.path, limits.max_image_bytes);
  std::span<const uint8_t> b(static_cast<const uint8_t*>(im.data), im.size);
  if (im.format == OMNI_PLUGIN_IMAGE_RGB) return omni::sdk::Image::from_rgb(b, im.width, im.height);
  return video ? omni::sdk::Image::video_from_bytes(b) : omni::sdk::Image::from_bytes(b);
}

bool has_path_image(const omni::plugin::HostRequest& h) {
  for (const auto& im : h.images)
    if (!im.data) return true;
  return false;
}

// The SDK request for a host request the reader accepted (`id` already assigned).
omni::sdk::GenerateRequest to_sdk_request(omni_plugin_client* c, const omni::plugin::HostRequest& h, uint64_t id) {
  const omni_plugin_request& r = h.request;
  omni::sdk::GenerateRequest q;
  q.request_id = id;
  if (r.prompt) q.prompt = r.prompt;
  q.max_tokens = r.max_tokens ? r.max_tokens : 256;
  // Finite negatives (request_init's values) mean the model's default; the reader has
  // refused NaN and infinities, which would otherwise land here as "default".
  if (r.temperature >= 0) q.sampling.temperature = r.temperature;
  if (r.top_p > 0) q.sampling.top_p = r.top_p;
  if (r.repetition_penalty > 0) q.sampling.repetition_penalty = r.repetition_penalty;
  if (r.top_k != OMNI_PLUGIN_TOP_K_MODEL_DEFAULT) q.sampling.top_k = r.top_k;
  q.sampling.seed = r.seed;
  q.sampling.greedy = r.greedy != 0;
  q.deadline_ms = r.deadline_ms;
  for (size_t i = 0; i < r.n_stop; ++i) q.stop.emplace_back(r.stop[i]);
  // A picture (video) file is bounded by the daemon's own max_image_bytes (max_video_bytes):
  // connecting first (generate would anyway) is how the plugin learns them.
  omni::ipc::Limits limits;
  limits.max_image_bytes = limits.max_video_bytes = 0;
  if (has_path_image(h)) limits = c->client.connect().limits;
  for (const auto& im : h.images) q.images.push_back(to_sdk_image(im, limits));
  return q;
}

int32_t p_client_create(const char* socket_path, const char* client_name, omni_plugin_client** out) {
  return guarded([&]() -> int32_t {
    if (!out) return set_error(OMNI_PLUGIN_E_INVALID_ARG, "out is NULL");
    *out = nullptr;
    if (!socket_path || !*socket_path) return set_error(OMNI_PLUGIN_E_INVALID_ARG, "socket_path is required");
    omni::sdk::ClientOptions o;
    o.socket_path = socket_path;
    o.client_name = client_name ? client_name : "omni-plugin";
    *out = new omni_plugin_client(std::move(o));
    return OMNI_PLUGIN_OK;
  });
}

void p_client_destroy(omni_plugin_client* c) {
  try {
    delete c;
  } catch (...) {
  }
}

uint64_t p_new_request_id(omni_plugin_client* c) { return c ? c->client.next_request_id() : 0; }

// generate and chat: `chat_in` null for a one-question request.
int32_t run_request(omni_plugin_client* c, const omni_plugin_request* rin, const omni_plugin_chat* chat_in,
                    bool is_chat, omni_plugin_event_fn on_event, void* user) {
  omni::ipc::Done done;
  std::string finish = "error";
  uint64_t id = 0;
  const int32_t st = guarded([&]() -> int32_t {
    if (!c) return set_error(OMNI_PLUGIN_E_INVALID_ARG, "client is NULL");
    omni::plugin::HostRequest h;
    std::string why;
    if (const int32_t rc = omni::plugin::read_request(rin, h, why, !is_chat); rc != OMNI_PLUGIN_OK)
      return set_error(rc, std::move(why));
    omni::plugin::HostChat chat;
    if (is_chat)
      if (const int32_t rc = omni::plugin::read_chat(chat_in, h.images.size(), chat, why); rc != OMNI_PLUGIN_OK)
        return set_error(rc, std::move(why));
    id = h.request.request_id ? h.request.request_id : c->client.next_request_id();
    omni::sdk::GenerateRequest q = to_sdk_request(c, h, id);
    if (is_chat) {
      q.prompt.clear();
      q.messages = std::move(chat.turns);
      q.system = std::move(chat.system);
      q.options = chat.options;
    }
    done = c->client.generate(q, [&](const omni::ipc::Token& t) {
      if (!on_event) return;
      omni_plugin_event ev;
      std::memset(&ev, 0, sizeof(ev));
      ev.struct_size = sizeof(ev);
      ev.kind = OMNI_PLUGIN_EVENT_TOKEN;
      ev.request_id = t.id;
      ev.text = t.text.c_str();
      ev.text_len = t.text.size();
      ev.token_id = t.token;
      ev.finish_reason = "";
      ev.error_message = "";
      on_event(user, &ev);
    });
    finish = omni::ipc::finish_reason_name(done.reason);
    if (done.reason == omni::ipc::FinishReason::error) t_last_error = std::string(omni::ipc::error_code_name(done.error_code)) + ": " + done.error_message;
    return OMNI_PLUGIN_OK;
  });
  if (on_event) {  // FINAL, exactly once
    try {
      omni_plugin_event ev;
      std::memset(&ev, 0, sizeof(ev));
      ev.struct_size = sizeof(ev);
      ev.kind = OMNI_PLUGIN_EVENT_FINAL;
      ev.request_id = id;
      ev.text = "";
      ev.status = st;
      ev.prompt_tokens = done.prompt_tokens;
      ev.completion_tokens = done.completion_tokens;
      ev.image_tokens = done.image_tokens;
      ev.finish_reason = st == OMNI_PLUGIN_OK ? finish.c_str() : "error";
      ev.error_message = t_last_error.c_str();
      ev.total_ms = done.timings.total_ms;
      on_event(user, &ev);
    } catch (...) {
    }
  }
  return st;
}

int32_t p_generate(omni_plugin_client* c, const omni_plugin_request* r, omni_plugin_event_fn on_event, void* user) {
  return run_request(c, r, nullptr, false, on_event, user);
}

int32_t p_chat(omni_plugin_client* c, const omni_plugin_request* r, const omni_plugin_chat* chat,
               omni_plugin_event_fn on_event, void* user) {
  return run_request(c, r, chat, true, on_event, user);
}

int32_t p_cancel(omni_plugin_client* c, uint64_t request_id) {
  return guarded([&]() -> int32_t {
    if (!c) return set_error(OMNI_PLUGIN_E_INVALID_ARG, "client is NULL");
    c->client.cancel(request_id);
    return OMNI_PLUGIN_OK;
  });
}

int32_t p_status_json(omni_plugin_client* c, char** out) {
  return guarded([&]() -> int32_t {
    if (!c || !out) return set_error(OMNI_PLUGIN_E_INVALID_ARG, "client and out are required");
    *out = nullptr;
    const std::string j = omni::sdk::status_to_json(c->client.status());
    char* s = static_cast<char*>(std::malloc(j.size() + 1));
    if (!s) return set_error(OMNI_PLUGIN_E_NO_MEMORY, "out of memory");
    std::memcpy(s, j.c_str(), j.size() + 1);
    *out = s;
    return OMNI_PLUGIN_OK;
  });
}

void p_free_string(char* s) { std::free(s); }

const omni_plugin_api kApi = {
    sizeof(omni_plugin_api), OMNI_PLUGIN_ABI_VERSION,
    p_version,       p_status_name, p_last_error, p_request_init, p_image_init, p_client_create,
    p_client_destroy, p_new_request_id, p_generate, p_cancel, p_status_json, p_free_string,
    p_chat_init,     p_chat,
};

}  // namespace

extern "C" OMNI_PLUGIN_EXPORT const omni_plugin_api* omni_plugin_entry(uint32_t host_abi_version) {
  return host_abi_version == OMNI_PLUGIN_ABI_VERSION ? &kApi : nullptr;
}
