/* omni_plugin.h - C ABI of libomni_plugin.so, the omnid client for agent and
 * workflow hosts (loaded with dlopen; pulls in neither a GPU runtime nor the model).
 *
 * DISCOVERY AND VERSIONING
 *   The library exports exactly one symbol, omni_plugin_entry. Call it with
 *   OMNI_PLUGIN_ABI_VERSION; it returns the function table or NULL when the ABI
 *   versions are incompatible (a breaking change bumps OMNI_PLUGIN_ABI_VERSION).
 *   The table starts with struct_size and abi_version and is APPEND-ONLY: newer
 *   plugins add fields at the end and never reorder or remove any. Before using a
 *   field that your header has but an older plugin may lack, check
 *   OMNI_PLUGIN_HAS(api, field). Input structs also start with struct_size (set it
 *   with request_init / image_init); the plugin reads only the bytes you declare:
 *   - fields your struct_size does not reach (an older header) take request_init's /
 *     image_init's defaults; fields past the plugin's own sizeof (a newer header)
 *     are not read;
 *   - a struct_size below 8, or one that ends inside a field, is refused with
 *     OMNI_PLUGIN_E_INVALID_ARG naming the field (e.g. "request.struct_size 12 ends
 *     inside request.prompt (bytes 8..16)");
 *   - request.images is stepped through by the struct_size its elements declare (your
 *     sizeof(omni_plugin_image)), never by the plugin's; every element must declare
 *     the same one.
 *
 * CONVENTIONS
 *   - Opaque handles; strings are UTF-8 and NUL-terminated; returned strings are
 *     owned by the plugin unless documented otherwise (status_json -> free_string).
 *   - Functions return int32_t status: OMNI_PLUGIN_OK (0) or a negative error code;
 *     last_error() gives the message of the last failure on the calling thread.
 *   - No C++ exception ever leaves the plugin. Callbacks must not throw/longjmp.
 *   - The plugin installs no signal handlers (it sends with MSG_NOSIGNAL), creates
 *     every descriptor O_CLOEXEC and starts no threads of its own.
 *
 * THREADING CONTRACT
 *   [any-thread]  entry, version, status_name, request_init, image_init, client_create,
 *                 free_string, last_error (per-thread), new_request_id, cancel.
 *   [serialized]  generate and status_json on one client run one at a time (a second
 *                 caller waits). Use several clients for parallel requests.
 *   [exclusive]   client_destroy: no other call on that client may be running or start.
 *   Events are delivered on the thread that called generate, before it returns.
 *   From inside the event callback you may call cancel (any request) but not
 *   generate/status_json on the same client (deadlock).
 *
 * STREAMING
 *   generate() calls on_event with kind TOKEN for each text piece and then with
 *   kind FINAL exactly once — also when the request fails, is cancelled, or the
 *   arguments are invalid (as long as on_event is not NULL). Nothing follows FINAL;
 *   `user` may be released after it. generate() returns the FINAL event's status.
 *
 * CANCELLATION
 *   cancel(client, request_id) is best-effort, idempotent (safe to call twice or for
 *   finished ids) and may be called from any thread. Use new_request_id() (or your
 *   own non-zero id in request.request_id) to know the id before generate starts.
 */
#ifndef OMNI_PLUGIN_H
#define OMNI_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OMNI_PLUGIN_ABI_VERSION 1u
#define OMNI_PLUGIN_TOP_K_MODEL_DEFAULT UINT32_MAX

/* status codes (same values as omni_client.h's omni_status) */
#define OMNI_PLUGIN_OK 0
#define OMNI_PLUGIN_E_INVALID_ARG (-1)
#define OMNI_PLUGIN_E_UNAVAILABLE (-2)        /* daemon not reachable / connection lost */
#define OMNI_PLUGIN_E_PROTOCOL (-3)
#define OMNI_PLUGIN_E_TOO_LARGE (-4)
#define OMNI_PLUGIN_E_UNSUPPORTED_VERSION (-5)
#define OMNI_PLUGIN_E_BUSY (-6)
#define OMNI_PLUGIN_E_NOT_ALLOWED (-7)
#define OMNI_PLUGIN_E_BAD_IMAGE (-8)
#define OMNI_PLUGIN_E_TIMEOUT (-9)
#define OMNI_PLUGIN_E_INTERNAL (-10)
#define OMNI_PLUGIN_E_NOT_READY (-11)
#define OMNI_PLUGIN_E_NO_MEMORY (-12)

#define OMNI_PLUGIN_EVENT_TOKEN 1u
#define OMNI_PLUGIN_EVENT_FINAL 2u

#define OMNI_PLUGIN_IMAGE_ENCODED 0u  /* PNG/JPEG/WebP file bytes */
#define OMNI_PLUGIN_IMAGE_RGB 1u      /* packed 8-bit RGB, width*height*3 bytes */
#define OMNI_PLUGIN_IMAGE_VIDEO 2u    /* an encoded video file (MP4, WebM, Matroska, AVI; protocol 1.2) */

typedef struct omni_plugin_client omni_plugin_client;

typedef struct omni_plugin_image {
  uint32_t struct_size;     /* sizeof(omni_plugin_image) */
  uint32_t format;          /* OMNI_PLUGIN_IMAGE_* */
  const void* data;         /* bytes, or NULL to read `path` */
  size_t size;
  const char* path;         /* encoded image or video file, used when data == NULL: refused
                               before reading unless a regular file of at most the daemon's
                               max_image_bytes (a video: max_video_bytes) (BAD_IMAGE,
                               TOO_LARGE; the message names it) */
  uint32_t width, height;   /* RGB only */
} omni_plugin_image;

typedef struct omni_plugin_request {
  uint32_t struct_size;     /* sizeof(omni_plugin_request) */
  uint32_t max_tokens;      /* default 256 */
  const char* prompt;       /* required: the question */
  const omni_plugin_image* images;
  size_t n_images;
  /* Sampling: what request_init leaves (negative floats, OMNI_PLUGIN_TOP_K_MODEL_DEFAULT)
     means "the model's default" (MiniCPM-V: 0.7, top_p 0.8, repetition 1.05, top_k 100).
     A NaN or infinite float is refused with OMNI_PLUGIN_E_INVALID_ARG naming the field. */
  float temperature;        /* >= 0 to set; 0 = greedy; < 0: model default */
  float top_p;              /* (0, 1] to set; <= 0: model default */
  float repetition_penalty; /* > 0 to set; <= 0: model default */
  uint32_t top_k;           /* 0 = off; OMNI_PLUGIN_TOP_K_MODEL_DEFAULT: model default */
  uint64_t seed;
  int32_t greedy;           /* non-zero: argmax */
  uint32_t deadline_ms;     /* 0 = none */
  const char* const* stop;  /* stop strings */
  size_t n_stop;
  uint64_t request_id;      /* 0: assigned by the plugin (reported in events) */
} omni_plugin_request;

/* Conversations (protocol 1.1; check OMNI_PLUGIN_HAS(api, chat)). A part is text
 * (text != NULL; tokenized as text: chat markers in it are not parsed) or an attachment
 * (text == NULL: request.images[image], a picture or a video, each used exactly once). The part and
 * message structs are frozen: they never grow (new settings go into omni_plugin_chat). */
#define OMNI_PLUGIN_ROLE_SYSTEM 0u     /* only as the first turn */
#define OMNI_PLUGIN_ROLE_USER 1u
#define OMNI_PLUGIN_ROLE_ASSISTANT 2u

typedef struct omni_plugin_message_part {
  const char* text;
  uint32_t image;
} omni_plugin_message_part;

typedef struct omni_plugin_message {
  uint32_t role;                          /* OMNI_PLUGIN_ROLE_* */
  const omni_plugin_message_part* parts;
  size_t n_parts;
} omni_plugin_message;

typedef struct omni_plugin_chat {
  uint32_t struct_size;     /* sizeof(omni_plugin_chat) (chat_init sets it) */
  uint32_t max_slice_nums;  /* slices per picture; 0: the model's */
  const omni_plugin_message* messages;   /* required */
  size_t n_messages;
  const char* system;       /* a system turn put first; NULL: none */
  int32_t use_image_id;     /* -1: the model's; 0: off; 1: on */
  int32_t enable_thinking;  /* Qwen3-style templates; -1: the template's default; 0: off; 1: on */
  /* Videos (added with protocol 1.2); 0: the model's release default (docs/video.md). */
  uint32_t video_max_frames;      /* 2.6: frames; 4.5: frame groups */
  uint32_t video_max_packing;     /* 4.5: frames per group, 1..6 */
  uint32_t video_max_slice_nums;  /* slices per frame */
  uint32_t video_fps_milli;       /* frames sampled per second, in thousandths (1000 = 1 fps) */
} omni_plugin_chat;

typedef struct omni_plugin_event {
  uint32_t struct_size;     /* sizeof(omni_plugin_event) as built into the plugin */
  uint32_t kind;            /* OMNI_PLUGIN_EVENT_TOKEN | OMNI_PLUGIN_EVENT_FINAL */
  uint64_t request_id;
  /* TOKEN */
  const char* text;         /* UTF-8 piece, NUL-terminated, valid during the call */
  size_t text_len;
  int64_t token_id;
  /* FINAL */
  int32_t status;           /* OMNI_PLUGIN_OK or an error */
  uint32_t prompt_tokens;
  uint32_t completion_tokens;
  uint32_t image_tokens;
  const char* finish_reason;  /* "stop"|"length"|"cancelled"|"deadline"|"error" */
  const char* error_message;  /* "" unless status != OK or finish_reason is "error" */
  double total_ms;
} omni_plugin_event;

typedef void (*omni_plugin_event_fn)(void* user, const omni_plugin_event* event);

typedef struct omni_plugin_api {
  uint32_t struct_size;     /* bytes of this table as built into the plugin */
  uint32_t abi_version;     /* OMNI_PLUGIN_ABI_VERSION of the plugin */
  /* --- ABI 1 --- */
  const char* (*version)(void);  /* plugin version, e.g. "0.1.0 (protocol 1.0)" */
  const char* (*status_name)(int32_t status);
  const char* (*last_error)(void);
  void (*request_init)(omni_plugin_request* r);
  void (*image_init)(omni_plugin_image* im);
  int32_t (*client_create)(const char* socket_path, const char* client_name, omni_plugin_client** out);
  void (*client_destroy)(omni_plugin_client* c);
  uint64_t (*new_request_id)(omni_plugin_client* c);
  int32_t (*generate)(omni_plugin_client* c, const omni_plugin_request* r, omni_plugin_event_fn on_event, void* user);
  int32_t (*cancel)(omni_plugin_client* c, uint64_t request_id);
  int32_t (*status_json)(omni_plugin_client* c, char** out_json);
  void (*free_string)(char* s);
  /* --- appended in plugin 0.2 (protocol 1.1), same ABI 1 --- */
  void (*chat_init)(omni_plugin_chat* chat);
  /* generate for a conversation: request.prompt is not used (may be NULL); request.images
     are the pictures the parts refer to; sampling, events and errors as in generate. */
  int32_t (*chat)(omni_plugin_client* c, const omni_plugin_request* r, const omni_plugin_chat* chat,
                  omni_plugin_event_fn on_event, void* user);
  /* new functions are appended here */
} omni_plugin_api;

/* True when the plugin's table is large enough to contain `field`. */
#define OMNI_PLUGIN_HAS(api, field) \
  ((api)->struct_size >= offsetof(omni_plugin_api, field) + sizeof(((omni_plugin_api*)0)->field))

typedef const omni_plugin_api* (*omni_plugin_entry_fn)(uint32_t host_abi_version);

#if defined(__GNUC__)
#define OMNI_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define OMNI_PLUGIN_EXPORT
#endif

/* The only exported symbol. Returns NULL when host_abi_version is incompatible. */
OMNI_PLUGIN_EXPORT const omni_plugin_api* omni_plugin_entry(uint32_t host_abi_version);

#ifdef __cplusplus
}
#endif
#endif /* OMNI_PLUGIN_H */
