/* c_host: a minimal C host that dlopens libomni_plugin.so and asks about an image.
 *
 *   omni_c_host [--plugin PATH] [--socket PATH] [--image FILE]... [--greedy] [--max-tokens N] "question"
 *
 * Defaults: plugin from $OMNI_PLUGIN, else OMNI_PLUGIN_DEFAULT (the plugin's path known
 * when this host was built, see below), socket from $OMNI_SOCKET or /run/omnid/omnid.sock.
 * Streams the answer to stdout.
 * Exit status: 0 ok, 1 usage/plugin error, 2 request failed.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "omni_plugin.h"

#define MAX_IMAGES 8

/* Where the plugin is, known at build time: the build tree's libomni_plugin.so for the
 * omni_c_host target (examples/CMakeLists.txt), the installed one when built against an
 * installed omnid:
 *   cc c_host.c $(pkg-config --cflags --libs omni-plugin) \
 *      -DOMNI_PLUGIN_DEFAULT="\"$(pkg-config --variable=plugin omni-plugin)\""
 * Without it: the dlopen search path (a plugin installed under /usr is found there). */
#ifndef OMNI_PLUGIN_DEFAULT
#define OMNI_PLUGIN_DEFAULT "libomni_plugin.so"
#endif

static void on_event(void* user, const omni_plugin_event* ev) {
  int* final_status = (int*)user;
  if (ev->kind == OMNI_PLUGIN_EVENT_TOKEN) {
    fwrite(ev->text, 1, ev->text_len, stdout);
    fflush(stdout);
  } else if (ev->kind == OMNI_PLUGIN_EVENT_FINAL) {
    fputc('\n', stdout);
    *final_status = ev->status;
    if (ev->status != OMNI_PLUGIN_OK || strcmp(ev->finish_reason, "error") == 0)
      fprintf(stderr, "c_host: request failed (%d): %s\n", ev->status, ev->error_message);
  }
}

int main(int argc, char** argv) {
  const char* plugin = getenv("OMNI_PLUGIN") ? getenv("OMNI_PLUGIN") : OMNI_PLUGIN_DEFAULT;
  const char* socket = getenv("OMNI_SOCKET") ? getenv("OMNI_SOCKET") : "/run/omnid/omnid.sock";
  const char* images[MAX_IMAGES];
  size_t n_images = 0;
  const char* question = NULL;
  int greedy = 0;
  long max_tokens = 512;
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--plugin") && i + 1 < argc) plugin = argv[++i];
    else if (!strcmp(argv[i], "--socket") && i + 1 < argc) socket = argv[++i];
    else if (!strcmp(argv[i], "--image") && i + 1 < argc && n_images < MAX_IMAGES) images[n_images++] = argv[++i];
    else if (!strcmp(argv[i], "--greedy")) greedy = 1;
    else if (!strcmp(argv[i], "--max-tokens") && i + 1 < argc) max_tokens = strtol(argv[++i], NULL, 10);
    else if (argv[i][0] != '-' && !question) question = argv[i];
    else {
      fprintf(stderr, "usage: %s [--plugin PATH] [--socket PATH] [--image FILE]... [--greedy] [--max-tokens N] \"question\"\n",
              argv[0]);
      return 1;
    }
  }
  if (max_tokens < 1 || max_tokens > 1000000) {
    fprintf(stderr, "c_host: --max-tokens must be 1..1000000\n");
    return 1;
  }
  if (!question) {
    fprintf(stderr, "c_host: a question is required\n");
    return 1;
  }

  void* h = dlopen(plugin, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    fprintf(stderr, "c_host: dlopen: %s\n", dlerror());
    return 1;
  }
  omni_plugin_entry_fn entry = (omni_plugin_entry_fn)dlsym(h, "omni_plugin_entry");
  const omni_plugin_api* api = entry ? entry(OMNI_PLUGIN_ABI_VERSION) : NULL;
  if (!api) {
    fprintf(stderr, "c_host: plugin missing or ABI %u not supported\n", OMNI_PLUGIN_ABI_VERSION);
    return 1;
  }
  if (!OMNI_PLUGIN_HAS(api, free_string)) {
    fprintf(stderr, "c_host: plugin table too old\n");
    return 1;
  }

  omni_plugin_client* client = NULL;
  if (api->client_create(socket, "c_host", &client) != OMNI_PLUGIN_OK) {
    fprintf(stderr, "c_host: %s\n", api->last_error());
    return 1;
  }
  omni_plugin_image ims[MAX_IMAGES];
  for (size_t i = 0; i < n_images; ++i) {
    api->image_init(&ims[i]);
    ims[i].format = OMNI_PLUGIN_IMAGE_ENCODED;
    ims[i].path = images[i];
  }
  omni_plugin_request req;
  api->request_init(&req);
  req.prompt = question;
  req.images = ims;
  req.n_images = n_images;
  req.max_tokens = (uint32_t)max_tokens;
  req.greedy = greedy;

  int final_status = OMNI_PLUGIN_E_INTERNAL;
  const int32_t rc = api->generate(client, &req, on_event, &final_status);
  api->client_destroy(client);
  /* the plugin is linked with -z nodelete; dlclose is still fine to call */
  dlclose(h);
  return (rc == OMNI_PLUGIN_OK && final_status == OMNI_PLUGIN_OK) ? 0 : 2;
}
