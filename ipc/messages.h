// ipc/messages.h - the message schema of the omnid control socket (protocol 1.1).
//
// Every frame payload is one msgpack map with a string field "type" naming the
// message; the other fields are listed per struct below and in docs/protocol.md.
// Decoding rules (both directions): unknown fields are ignored; a missing
// required field, a field of the wrong type, an out-of-range value or a
// duplicated key is IpcError(bad_message) naming the field ("generate.prompt").
//
// ---------------------------------------------------------------------------
// SERVER CONTRACT (what the daemon's session code must do, in this order)
// ---------------------------------------------------------------------------
//  (ipc/asio_connection.h implements steps 2 and the I/O side of this for Boost.Asio.)
//  accept():
//   1. cred = peer_credentials(fd); if !policy.allows(cred): send
//      ErrorMsg{0, not_allowed, ...} and close.
//   2. Read with FrameReader(limits) + recv_into(fd, reader, /*nonblocking*/true)
//      after each async_wait(wait_read). For every frame: msg = decode_message(frame,
//      limits, &id). On IpcError e from next()/recv_into(): send ErrorMsg{0, e.code(),
//      e.what()} and close (framing lost). On IpcError from decode_message(): send
//      ErrorMsg{id, code, msg} and keep the connection (the frame's fds are closed
//      when the Frame is destroyed).
//  handshake:
//   3. The first frame must be Hello (deadline: 5 s). Anything else -> ErrorMsg{0,
//      not_ready} and close. If hello.proto_major != kProtocolMajor -> ErrorMsg{0,
//      unsupported_version} and close. Else reply HelloOk{kProtocolMajor,
//      min(kProtocolMinor, hello.proto_minor), server_version, model, limits}.
//      A second Hello later is bad_message.
//  requests (any order, pipelined; request ids are chosen by the client and are
//  unique among that connection's in-flight requests; a duplicate in-flight id is
//  rejected with ErrorMsg{id, bad_message}):
//   4. Generate: map every image with map_sealed_image(frame.fds[img.fd_index].get(),
//      img.size, limits) (ipc/memfd.h) BEFORE queueing; on failure send
//      ErrorMsg{id, bad_image}. If the queue is full: ErrorMsg{id, busy}.
//      Otherwise stream zero or more Token{id, ...} frames followed by EXACTLY ONE
//      Done{id, reason, counts, timings}. A rejected request gets exactly one
//      ErrorMsg{id, ...} and no Done. So: every Generate ends with exactly one
//      terminal frame, Done{id} or ErrorMsg{id}; nothing for that id follows it.
//   5. Cancel{id}: if id is in flight, finish it as Done{id, reason=cancelled}
//      (tokens already produced may still arrive before it). Unknown/finished ids
//      are ignored silently (cancel is idempotent and races with completion).
//   6. StatusRequest{id} -> Status{id, ...} (may interleave with Token frames).
//   7. Unknown "type": ErrorMsg{0, bad_message} and keep the connection.
//  disconnect: EOF/ECONNRESET on the socket cancels all of that connection's
//  requests. Send with MSG_NOSIGNAL. Frames sent by the server carry no fds.
// ---------------------------------------------------------------------------
#pragma once

#include <cstdint>
#include <span>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "ipc/conversation.h"
#include "ipc/error.h"
#include "ipc/frame.h"
#include "ipc/limits.h"
#include "ipc/value.h"

namespace omni::ipc {

inline constexpr uint32_t kProtocolMajor = 1;
inline constexpr uint32_t kProtocolMinor = 2;   // 1.1: conversations (generate.messages); 1.2: videos

// An attachment: a picture (encoded file, or raw RGB) or an encoded video file (MP4, WebM, ...).
enum class ImageFormat : uint8_t { encoded, rgb, video };  // wire: "encoded" | "rgb" | "video"
enum class FinishReason : uint8_t { stop, length, cancelled, deadline, error };

const char* image_format_name(ImageFormat f) noexcept;
const char* finish_reason_name(FinishReason r) noexcept;

/// client -> server, first frame. type "hello".
struct Hello {
  uint32_t proto_major = kProtocolMajor;  // "proto_major" required
  uint32_t proto_minor = kProtocolMinor;  // "proto_minor" required
  std::string client;                     // "client" optional, free text (<= 256 bytes)
};

/// server -> client, reply to Hello. type "hello_ok".
struct HelloOk {
  uint32_t proto_major = kProtocolMajor;  // required
  uint32_t proto_minor = kProtocolMinor;  // required: negotiated minor
  std::string server_version;             // "server_version" required
  std::string model;                      // "model" required (may be empty)
  Limits limits;                          // "limits" optional map; missing keys keep defaults
};

struct ImageRef {
  uint32_t fd_index = 0;                  // "fd" required: index into the frame's descriptors
  uint64_t size = 0;                      // "size" required: bytes in the memfd (== its st_size);
                                          //   at most max_image_bytes, a video max_video_bytes
  ImageFormat format = ImageFormat::encoded;  // "format" required
  uint32_t width = 0, height = 0;         // "width"/"height": required for rgb (size == w*h*3)
};

// Fields left unset (absent from the map) take the model's own defaults on the server
// (MiniCPM-V: temperature 0.7, top_p 0.8, top_k 100, repetition_penalty 1.05).
struct Sampling {
  std::optional<double> temperature;      // >= 0; 0 = greedy
  std::optional<uint32_t> top_k;          // 0 = off
  std::optional<double> top_p;            // (0, 1]
  std::optional<double> repetition_penalty;  // > 0
  uint64_t seed = 0;
  bool greedy = false;                    // true: argmax, other fields ignored
};

/// client -> server. type "generate".
struct Generate {
  uint64_t id = 0;                        // "id" required, != 0, client-chosen
  std::string prompt;                     // "prompt": the question (one user turn); required without "messages"
  // 1.1: "messages" optional array of {"role": "system"|"user"|"assistant", "content": [part, ...]},
  // a part {"text": str}, {"image": index into "images"} or (1.2) {"video": index of a "video"
  // attachment in "images"}; instead of "prompt".
  std::vector<Turn> messages;
  std::string system;                     // 1.1: "system" optional: a system turn put first
  PromptOptions options;                  // 1.1: "max_slice_nums", "use_image_id", "enable_thinking" optional;
                                          // 1.2: "video_fps", "video_max_frames", "video_max_packing",
                                          //      "video_max_slice_nums" optional
  std::vector<ImageRef> images;           // "images" optional array: the attachments, pictures and videos
  uint32_t max_tokens = 256;              // "max_tokens" optional, 1..limits.max_new_tokens
  Sampling sampling;                      // "sampling" optional map
  std::vector<std::string> stop;          // "stop" optional array of strings
  uint32_t deadline_ms = 0;               // "deadline_ms" optional, 0 = none; relative to receipt
};

/// server -> client. type "token".
struct Token {
  uint64_t id = 0;                        // required
  std::string text;                       // "text" required: UTF-8 piece (may be empty)
  int64_t token = -1;                     // "token" optional: token id
};

struct Timings {
  double queue_ms = 0, prefill_ms = 0, decode_ms = 0, total_ms = 0;
};

/// server -> client, terminal frame of a generate. type "done".
struct Done {
  uint64_t id = 0;                        // required
  FinishReason reason = FinishReason::stop;  // "reason" required
  uint32_t prompt_tokens = 0;             // optional counts
  uint32_t completion_tokens = 0;
  uint32_t image_tokens = 0;
  Timings timings;                        // "timings" optional map
  ErrorCode error_code = ErrorCode::ok;   // "error_code": with reason == error, the code's wire name
  std::string error_message;
};

/// client -> server. type "cancel".
struct Cancel {
  uint64_t id = 0;                        // required
};

/// client -> server. type "status_request".
struct StatusRequest {
  uint64_t id = 0;                        // optional, echoed in Status
};

/// server -> client. type "status".
struct Status {
  uint64_t id = 0;                        // echo of StatusRequest.id
  std::string model;                      // required
  uint32_t queue_depth = 0;               // required
  uint32_t active_requests = 0;           // required
  double tokens_per_s = 0;                // optional
  Value details;                          // "details" optional generic map: placement, memory per device...
};

/// server -> client. type "error".
struct ErrorMsg {
  uint64_t id = 0;                        // request id, or 0 for the connection
  ErrorCode code = ErrorCode::internal;   // "code" required: wire name
  std::string message;                    // "message" required
};

using Message = std::variant<Hello, HelloOk, Generate, Token, Done, Cancel, StatusRequest, Status, ErrorMsg>;

/// The conversation a generate asks about: its messages, or one user turn of its pictures
/// and prompt; its system text first when set.
std::vector<Turn> generate_turns(const Generate& g);

/// Which of a generate's attachments are videos (by index).
std::vector<bool> video_attachments(const Generate& g);

/// Checks the conversation of a generate as its sender wrote it (ipc::validate_conversation
/// over its messages or its one-question turn, plus `system` against a leading system
/// turn); IpcError(bad_message) naming generate.messages[i]..., as decode_message does.
void check_conversation(const Generate& g);

/// Wire "type" of a message.
const char* message_type(const Message& m) noexcept;

/// msgpack payload (no length prefix).
std::vector<uint8_t> encode_payload(const Message& m);
/// Complete frame: 4-byte length + payload. Send it with send_frame().
std::vector<uint8_t> encode_message(const Message& m);

/// Decode a frame. `request_id`, when given, receives the request id as soon as it
/// is known (0 otherwise), so the server can address its error reply.
/// Validates descriptors: only Generate may carry fds; every fd must be
/// referenced by exactly one image. Throws IpcError only.
Message decode_message(const Frame& frame, const Limits& limits, uint64_t* request_id = nullptr);
/// Same, from a bare payload and the number of descriptors that came with it.
Message decode_payload(std::span<const uint8_t> payload, std::size_t nfds, const Limits& limits,
                       uint64_t* request_id = nullptr);

}  // namespace omni::ipc
