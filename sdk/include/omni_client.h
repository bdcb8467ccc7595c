/* omni_client.h - C API of the omnid client SDK (libomni_sdk).
 *
 * All strings are UTF-8 and NUL-terminated unless a length is given.
 * No C++ exception ever crosses this API: every function catches everything and
 * reports an omni_status code; the message of the last failure on the calling
 * thread is available from omni_last_error().
 *
 * THREAD-SAFETY CONTRACT
 *  - omni_client_generate / omni_client_status_json on one handle are serialized
 *    internally (safe from several threads, executed one at a time). Use one handle
 *    per concurrent request stream.
 *  - omni_client_cancel may be called from any thread, also from inside the token
 *    callback; it is idempotent and never blocks on a running generate.
 *  - omni_client_destroy must not race with any other call on the same handle.
 *  - The token callback runs on the thread that called omni_client_generate.
 */
#ifndef OMNI_CLIENT_H
#define OMNI_CLIENT_H

#include <stddef.h>
#include <stdint.h>

/* top_k value meaning "the model's default" (what omni_generate_params_init sets). */
#define OMNI_TOP_K_MODEL_DEFAULT UINT32_MAX

#ifdef __cplusplus
extern "C" {
#endif

typedef enum omni_status {
  OMNI_OK = 0,
  OMNI_E_INVALID_ARG = -1,   /* bad argument passed to this API */
  OMNI_E_UNAVAILABLE = -2,   /* daemon not reachable / connection lost */
  OMNI_E_PROTOCOL = -3,      /* bad_frame / bad_message from either side */
  OMNI_E_TOO_LARGE = -4,     /* a limit was exceeded */
  OMNI_E_UNSUPPORTED_VERSION = -5,
  OMNI_E_BUSY = -6,          /* daemon saturated; retry later */
  OMNI_E_NOT_ALLOWED = -7,   /* peer credentials rejected */
  OMNI_E_BAD_IMAGE = -8,     /* image unreadable / rejected */
  OMNI_E_TIMEOUT = -9,
  OMNI_E_INTERNAL = -10,
  OMNI_E_NOT_READY = -11,    /* daemon still loading */
  OMNI_E_NO_MEMORY = -12
} omni_status;

/* OMNI_IMAGE_VIDEO: an encoded video file (MP4, WebM, Matroska, AVI; protocol 1.2), sampled
   by the daemon as the model's release does (docs/video.md). */
typedef enum omni_image_format { OMNI_IMAGE_ENCODED = 0, OMNI_IMAGE_RGB = 1, OMNI_IMAGE_VIDEO = 2 } omni_image_format;

typedef struct omni_image {
  const void* data;        /* encoded file bytes (PNG/JPEG/WebP, or a video), or packed RGB8 */
  size_t size;
  int format;              /* omni_image_format */
  uint32_t width, height;  /* RGB only */
} omni_image;

typedef struct omni_generate_params {
  const char* prompt;               /* required */
  const omni_image* images;
  size_t n_images;
  uint32_t max_tokens;              /* 0 -> 256 */
  /* Sampling: what _init leaves (negative floats, OMNI_TOP_K_MODEL_DEFAULT) means "the
     model's default" (MiniCPM-V: temperature 0.7, top_k 100, top_p 0.8, repetition 1.05).
     A NaN or infinite float is refused with OMNI_E_INVALID_ARG naming the field. */
  float temperature;                /* >= 0 to set; 0 = greedy; < 0: model default */
  uint32_t top_k;                   /* 0 = off */
  float top_p;                      /* (0, 1] to set; <= 0: model default */
  float repetition_penalty;         /* > 0 to set; <= 0: model default */
  uint64_t seed;
  int greedy;                       /* non-zero: argmax */
  const char* const* stop;
  size_t n_stop;
  uint32_t deadline_ms;             /* 0 = none */
  uint64_t request_id;              /* 0 = assigned; see omni_client_next_request_id */
} omni_generate_params;

typedef struct omni_done {
  uint64_t request_id;
  char finish_reason[16];           /* "stop" | "length" | "cancelled" | "deadline" | "error" */
  uint32_t prompt_tokens, completion_tokens, image_tokens;
  double queue_ms, prefill_ms, decode_ms, total_ms;
} omni_done;

/* Token callback: piece is a UTF-8 fragment of `len` bytes (NUL-terminated too). */
typedef void (*omni_token_fn)(void* user, uint64_t request_id, const char* piece, size_t len, int64_t token_id);

typedef struct omni_client omni_client;

/* Fill params with defaults. */
void omni_generate_params_init(omni_generate_params* p);

/* Create a handle. Does not connect yet (the first call does). */
omni_status omni_client_create(const char* socket_path, const char* client_name, omni_client** out);
void omni_client_destroy(omni_client* c);

uint64_t omni_client_next_request_id(omni_client* c);

/* Blocking generate with streaming callback. On OMNI_OK, *out_done (optional) holds
 * the final info (finish_reason may be "cancelled", "deadline" or "error"). */
omni_status omni_client_generate(omni_client* c, const omni_generate_params* p, omni_token_fn on_token,
                                 void* user, omni_done* out_done);

/* Conversations (protocol 1.1): system, user and assistant turns of text and pictures.
 * A part is text (text != NULL, tokenized as text: chat markers in it are not parsed)
 * or an attachment (text == NULL: params->images[image], a picture or a video, each used once). */
typedef enum omni_role { OMNI_ROLE_SYSTEM = 0, OMNI_ROLE_USER = 1, OMNI_ROLE_ASSISTANT = 2 } omni_role;

typedef struct omni_message_part {
  const char* text;
  size_t image;
} omni_message_part;

typedef struct omni_message {
  int role;                         /* omni_role; a system turn only first */
  const omni_message_part* parts;
  size_t n_parts;
} omni_message;

typedef struct omni_chat {
  size_t struct_size;               /* sizeof(omni_chat) as you compiled it (omni_chat_init sets it);
                                       fields it does not reach keep omni_chat_init's defaults */
  const omni_message* messages;
  size_t n_messages;
  const char* system;               /* a system turn put first; NULL: none */
  uint32_t max_slice_nums;          /* slices per picture; 0: the model's */
  int use_image_id;                 /* -1: the model's; 0: off; 1: on */
  int enable_thinking;              /* Qwen3-style templates; -1: the default; 0: off; 1: on */
  /* Videos (added in protocol 1.2; a caller compiled before them has a smaller struct_size
     and keeps the model's settings). 0: the model's release default. */
  double video_fps;                 /* frames sampled per second, (0, 60] */
  uint32_t video_max_frames;        /* 2.6: frames; 4.5: frame groups */
  uint32_t video_max_packing;       /* 4.5: frames per group, 1..6 */
  uint32_t video_max_slice_nums;    /* slices per frame */
} omni_chat;

void omni_chat_init(omni_chat* chat);

/* omni_client_generate for a conversation: p->prompt is not used (may be NULL); p->images
 * are the pictures the parts refer to; sampling and limits as in omni_client_generate. */
omni_status omni_client_chat(omni_client* c, const omni_generate_params* p, const omni_chat* chat,
                             omni_token_fn on_token, void* user, omni_done* out_done);

/* Best-effort, idempotent cancel of request_id. */
omni_status omni_client_cancel(omni_client* c, uint64_t request_id);

/* Daemon status as a JSON object text (model, queue_depth, active_requests,
 * tokens_per_s, details). Free with omni_string_free. */
omni_status omni_client_status_json(omni_client* c, char** out_json);
void omni_string_free(char* s);

/* Message of the last failed call on this thread ("" if none). Valid until the next
 * call on this thread. */
const char* omni_last_error(void);
const char* omni_status_name(omni_status s);

#ifdef __cplusplus
}
#endif
#endif /* OMNI_CLIENT_H */
