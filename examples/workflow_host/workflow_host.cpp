// workflow_host: runs a small multi-step workflow through libomni_plugin.so.
//
//   omni_workflow_host [--plugin PATH] [--socket PATH] [--step-timeout-ms N] IMAGE
//
// Steps (each one a request; "{prev}" is replaced by the previous step's answer):
//   1. describe      "Describe this picture in detail."            (with the image)
//   2. objects       "List the three most important objects in: {prev}"
//   3. summary       "Summarise in one sentence: {prev}"
// plus a status query at the end. A watchdog thread cancels a step that runs longer
// than --step-timeout-ms (cancel is thread-safe and idempotent; the FINAL event then
// reports "cancelled"). Uses only the C ABI in omni_plugin.h.
//
// The plugin: --plugin, else $OMNI_PLUGIN, else OMNI_PLUGIN_DEFAULT, the path known at
// build time (examples/c_host/c_host.c says how to set it against an installed omnid).
#include <dlfcn.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "omni_plugin.h"

#ifndef OMNI_PLUGIN_DEFAULT
#define OMNI_PLUGIN_DEFAULT "libomni_plugin.so"   // the dlopen search path
#endif

namespace {

struct StepResult {
  std::string text;
  std::string reason;
  int32_t status = OMNI_PLUGIN_E_INTERNAL;
  int finals = 0;
};

void on_event(void* user, const omni_plugin_event* ev) {
  auto* r = static_cast<StepResult*>(user);
  if (ev->kind == OMNI_PLUGIN_EVENT_TOKEN) {
    r->text.append(ev->text, ev->text_len);
  } else if (ev->kind == OMNI_PLUGIN_EVENT_FINAL) {
    ++r->finals;
    r->status = ev->status;
    r->reason = ev->finish_reason;
    if (ev->status != OMNI_PLUGIN_OK) r->text = ev->error_message;
  }
}

std::string replace_prev(std::string tmpl, const std::string& prev) {
  const auto p = tmpl.find("{prev}");
  if (p != std::string::npos) tmpl.replace(p, 6, prev);
  return tmpl;
}

}  // namespace

int main(int argc, char** argv) {
  std::string plugin = std::getenv("OMNI_PLUGIN") ? std::getenv("OMNI_PLUGIN") : OMNI_PLUGIN_DEFAULT;
  std::string socket = std::getenv("OMNI_SOCKET") ? std::getenv("OMNI_SOCKET") : "/run/omnid/omnid.sock";
  int step_timeout_ms = 120000;
  std::string image;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--plugin" && i + 1 < argc) plugin = argv[++i];
    else if (a == "--socket" && i + 1 < argc) socket = argv[++i];
    else if (a == "--step-timeout-ms" && i + 1 < argc) step_timeout_ms = std::atoi(argv[++i]);
    else if (a[0] != '-' && image.empty()) image = a;
    else {
      std::fprintf(stderr, "usage: %s [--plugin PATH] [--socket PATH] [--step-timeout-ms N] IMAGE\n", argv[0]);
      return 1;
    }
  }
  if (image.empty()) {
    std::fprintf(stderr, "workflow_host: an image file is required\n");
    return 1;
  }
  void* h = ::dlopen(plugin.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    std::fprintf(stderr, "workflow_host: dlopen: %s\n", ::dlerror());
    return 1;
  }
  auto entry = reinterpret_cast<omni_plugin_entry_fn>(::dlsym(h, "omni_plugin_entry"));
  const omni_plugin_api* api = entry ? entry(OMNI_PLUGIN_ABI_VERSION) : nullptr;
  if (!api || !OMNI_PLUGIN_HAS(api, free_string)) {
    std::fprintf(stderr, "workflow_host: incompatible plugin\n");
    return 1;
  }
  omni_plugin_client* client = nullptr;
  if (api->client_create(socket.c_str(), "workflow_host", &client) != OMNI_PLUGIN_OK) {
    std::fprintf(stderr, "workflow_host: %s\n", api->last_error());
    return 1;
  }

  struct Step {
    const char* name;
    const char* prompt;
    bool with_image;
  };
  const Step steps[] = {
      {"describe", "Describe this picture in detail.", true},
      {"objects", "List the three most important objects in: {prev}", false},
      {"summary", "Summarise in one sentence: {prev}", false},
  };
  std::string prev;
  int failures = 0;
  for (const Step& s : steps) {
    omni_plugin_image im;
    api->image_init(&im);
    im.format = OMNI_PLUGIN_IMAGE_ENCODED;
    im.path = image.c_str();
    const std::string prompt = replace_prev(s.prompt, prev);
    omni_plugin_request req;
    api->request_init(&req);
    req.prompt = prompt.c_str();
    req.images = s.with_image ? &im : nullptr;
    req.n_images = s.with_image ? 1 : 0;
    req.max_tokens = 256;
    req.greedy = 1;
    req.request_id = api->new_request_id(client);

    // watchdog: cancel the step if it runs too long
    std::mutex mu;
    std::condition_variable cv;
    bool finished = false;
    std::thread watchdog([&] {
      std::unique_lock lk(mu);
      if (!cv.wait_for(lk, std::chrono::milliseconds(step_timeout_ms), [&] { return finished; }))
        api->cancel(client, req.request_id);
    });
    StepResult r;
    const auto t0 = std::chrono::steady_clock::now();
    api->generate(client, &req, on_event, &r);
    {
      std::lock_guard lk(mu);
      finished = true;
    }
    cv.notify_all();
    watchdog.join();
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::printf("[%s] (%s, %.0f ms) %s\n", s.name, r.status == OMNI_PLUGIN_OK ? r.reason.c_str() : api->status_name(r.status),
                ms, r.text.c_str());
    if (r.status != OMNI_PLUGIN_OK || r.finals != 1) {
      ++failures;
      break;
    }
    prev = r.text;
  }
  char* json = nullptr;
  if (api->status_json(client, &json) == OMNI_PLUGIN_OK) {
    std::printf("[status] %s\n", json);
    api->free_string(json);
  }
  api->client_destroy(client);
  return failures ? 2 : 0;
}
