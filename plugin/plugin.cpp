// libomni_plugin.so: the function table over omni::sdk::Client.
// Every table function is noexcept in effect: all exceptions are caught here.
#include "omni_plugin.h"

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <new>
#include <string>

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

// Copy a caller struct that starts with struct_size into a zero-initialised local.
template <typename T>
bool read_struct(const T* in, T& out) {
  std::memset(&out, 0, sizeof(T));
  if (!in || in->struct_size < sizeof(uint32_t) * 2) return false;
  std::memcpy(&out, in, std::min<std::size_t>(in->struct_size, sizeof(T)));
  return true;
}

const char* p_version() { return "0.1.0 (protocol 1.0, plugin ABI 1)"; }

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
  if (!r) return;
  std::memset(r, 0, sizeof(*r));
  r->struct_size = sizeof(*r);
  r->max_tokens = 256;
  r->temperature = -1.0f;   // the model's defaults, filled in by the daemon
  r->top_p = -1.0f;
  r->repetition_penalty = -1.0f;
  r->top_k = OMNI_PLUGIN_TOP_K_MODEL_DEFAULT;
}

void p_image_init(omni_plugin_image* im) {
  if (!im) return;
  std::memset(im, 0, sizeof(*im));
  im->struct_size = sizeof(*im);
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

int32_t p_generate(omni_plugin_client* c, const omni_plugin_request* rin, omni_plugin_event_fn on_event, void* user) {
  omni::ipc::Done done;
  std::string finish = "error";
  uint64_t id = 0;
  const int32_t st = guarded([&]() -> int32_t {
    omni_plugin_request r;
    if (!c) return set_error(OMNI_PLUGIN_E_INVALID_ARG, "client is NULL");
    if (!read_struct(rin, r)) return set_error(OMNI_PLUGIN_E_INVALID_ARG, "request is NULL or struct_size too small");
    if (!r.prompt) return set_error(OMNI_PLUGIN_E_INVALID_ARG, "request.prompt is required");
    if (r.n_images && !r.images) return set_error(OMNI_PLUGIN_E_INVALID_ARG, "request.images is NULL");
    if (r.n_stop && !r.stop) return set_error(OMNI_PLUGIN_E_INVALID_ARG, "request.stop is NULL");
    omni::sdk::GenerateRequest q;
    q.request_id = r.request_id ? r.request_id : c->client.next_request_id();
    id = q.request_id;
    q.prompt = r.prompt;
    q.max_tokens = r.max_tokens ? r.max_tokens : 256;
    if (r.temperature >= 0) q.sampling.temperature = r.temperature;
    if (r.top_p > 0) q.sampling.top_p = r.top_p;
    if (r.repetition_penalty > 0) q.sampling.repetition_penalty = r.repetition_penalty;
    if (r.top_k != OMNI_PLUGIN_TOP_K_MODEL_DEFAULT) q.sampling.top_k = r.top_k;
    q.sampling.seed = r.seed;
    q.sampling.greedy = r.greedy != 0;
    q.deadline_ms = r.deadline_ms;
    for (size_t i = 0; i < r.n_stop; ++i) {
      if (!r.stop[i]) return set_error(OMNI_PLUGIN_E_INVALID_ARG, "stop string is NULL");
      q.stop.emplace_back(r.stop[i]);
    }
    for (size_t i = 0; i < r.n_images; ++i) {
      omni_plugin_image im;
      if (!read_struct(&r.images[i], im)) return set_error(OMNI_PLUGIN_E_INVALID_ARG, "image struct_size too small");
      if (im.data) {
        std::span<const uint8_t> b(static_cast<const uint8_t*>(im.data), im.size);
        if (im.format == OMNI_PLUGIN_IMAGE_RGB) q.images.push_back(omni::sdk::Image::from_rgb(b, im.width, im.height));
        else if (im.format == OMNI_PLUGIN_IMAGE_ENCODED) q.images.push_back(omni::sdk::Image::from_bytes(b));
        else return set_error(OMNI_PLUGIN_E_INVALID_ARG, "unknown image format");
      } else if (im.path) {
        if (im.format != OMNI_PLUGIN_IMAGE_ENCODED) return set_error(OMNI_PLUGIN_E_INVALID_ARG, "path images must be encoded");
        q.images.push_back(omni::sdk::Image::from_file(im.path));
      } else {
        return set_error(OMNI_PLUGIN_E_INVALID_ARG, "image has neither data nor path");
      }
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
    if (done.reason == omni::ipc::FinishReason::error) t_last_error = done.error_code + ": " + done.error_message;
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
};

}  // namespace

extern "C" OMNI_PLUGIN_EXPORT const omni_plugin_api* omni_plugin_entry(uint32_t host_abi_version) {
  return host_abi_version == OMNI_PLUGIN_ABI_VERSION ? &kApi : nullptr;
}
