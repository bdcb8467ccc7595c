// sdk/client.h - C++ client for the omnid daemon (links omni_ipc only: no engine, no CUDA).
//
// THREAD-SAFETY CONTRACT
//  * One Client = one connection. generate(), status(), connect() and close() are
//    serialized by an internal mutex: concurrent calls from several threads are
//    safe but run one after another. For parallel requests use several Clients.
//  * cancel() may be called from any thread at any time, including from inside the
//    token callback and while generate() runs on another thread. It never blocks on
//    a running generate(), never throws, and is idempotent (cancelling twice, or an
//    unknown/finished id, is harmless). Cancelling an id before its generate() starts
//    makes that generate() return Done{reason=cancelled} without contacting the daemon.
//  * The token callback runs on the thread that called generate(). If it throws, the
//    connection is dropped (the daemon cancels the request) and the exception is
//    rethrown from generate().
//  * Reconnect: when the daemon restarted, the next call notices the dead connection
//    and reconnects (with a new handshake). A request is re-sent automatically only
//    when sending it on a reused connection failed; never after any reply arrived.
//  * Errors are sdk::Error (an ipc::ErrorCode plus message); generate() returns Done
//    for every finish reason the daemon reports (stop, length, cancelled, deadline,
//    error) and throws for error frames and transport failures.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "ipc/messages.h"
#include "ipc/unique_fd.h"

namespace omni::sdk {

using ipc::ErrorCode;

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& msg) : std::runtime_error(msg), code_(code) {}
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

struct ClientOptions {
  std::string socket_path = "/run/omnid/omnid.sock";
  std::string client_name = "omni-sdk";
  int handshake_timeout_ms = 5000;
  int io_timeout_ms = 300000;  // longest silence tolerated while waiting for a frame; -1 = none
};

/// An attachment ready to send, a picture or a video: the bytes already live in a sealed
/// memfd (one copy at creation, none after). Cheap to copy; reusable across requests.
class Image {
 public:
  static Image from_bytes(std::span<const uint8_t> encoded);  // PNG/JPEG/WebP file bytes
  /// Reads an encoded picture file of at most `max_bytes` (pass the daemon's figure,
  /// Client::connect().limits.max_image_bytes; the default is the protocol's). The
  /// file is checked before it is read: anything but a regular file (a FIFO, /dev/zero,
  /// a directory) is bad_image, a larger one too_large, and no more than max_bytes + 1
  /// bytes are ever read (a file growing meanwhile is too_large too). Errors name the path.
  static Image from_file(const std::string& path, uint64_t max_bytes = ipc::Limits{}.max_image_bytes);
  static Image from_rgb(std::span<const uint8_t> rgb, uint32_t width, uint32_t height);
  /// An encoded video (MP4, WebM, Matroska, AVI, ...; protocol 1.2), decoded and sampled by
  /// the daemon (docs/video.md). From a file: checked as from_file, bounded by max_video_bytes.
  static Image video_from_bytes(std::span<const uint8_t> encoded);
  static Image video_from_file(const std::string& path, uint64_t max_bytes = ipc::Limits{}.max_video_bytes);
  /// Take ownership of an already sealed memfd (checked like the daemon checks it).
  static Image from_sealed_memfd(ipc::UniqueFd fd, uint64_t size, ipc::ImageFormat format,
                                 uint32_t width = 0, uint32_t height = 0);
  uint64_t size() const noexcept { return size_; }
  ipc::ImageFormat format() const noexcept { return format_; }
  int fd() const noexcept { return fd_ ? fd_->get() : -1; }
  uint32_t width() const noexcept { return width_; }
  uint32_t height() const noexcept { return height_; }

 private:
  std::shared_ptr<ipc::UniqueFd> fd_;
  uint64_t size_ = 0;
  ipc::ImageFormat format_ = ipc::ImageFormat::encoded;
  uint32_t width_ = 0, height_ = 0;
};

struct GenerateRequest {
  uint64_t request_id = 0;  // 0: the client assigns one (see Client::next_request_id)
  std::string prompt;       // one user turn: the images, then this; unused with `messages`
  std::vector<Image> images;
  // A conversation instead of `prompt` (protocol 1.1): system/user/assistant turns whose
  // picture (and video) parts index `images`, each once. Their text is text to the daemon:
  // chat markers in it ("<|im_end|>") are not parsed.
  std::vector<ipc::Turn> messages;
  std::string system;               // a system turn put first (1.1)
  ipc::PromptOptions options;       // max_slice_nums, use_image_id, enable_thinking (1.1)
  uint32_t max_tokens = 256;
  ipc::Sampling sampling;
  std::vector<std::string> stop;
  uint32_t deadline_ms = 0;
};

using TokenCallback = std::function<void(const ipc::Token&)>;

class Client {
 public:
  explicit Client(ClientOptions options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  /// Connect + handshake if not connected (or the connection died). Returns the
  /// server's hello_ok (version, model, limits).
  ipc::HelloOk connect();
  /// A fresh request id, unique within this Client (thread-safe).
  uint64_t next_request_id() noexcept;
  /// Run one request, streaming each token to on_token; returns the final Done.
  /// A NaN or infinite sampling value is refused before anything is sent, with
  /// Error{bad_message, "sampling.<field> ..."} (the code the daemon uses for it).
  /// `assigned_id`, when given, receives the id before the request is sent.
  ipc::Done generate(const GenerateRequest& request, const TokenCallback& on_token,
                     uint64_t* assigned_id = nullptr);
  /// Best-effort cancel (see the thread-safety contract above).
  void cancel(uint64_t request_id) noexcept;
  /// Daemon status (model, queue depth, active requests, tokens/s, details).
  ipc::Status status();
  /// Drop the connection (the next call reconnects).
  void close() noexcept;

 private:
  void ensure_connected_locked(bool* reused);
  void drop_locked() noexcept;
  ipc::Frame read_frame_locked(int timeout_ms);
  bool alive_locked() noexcept;

  ClientOptions opts_;
  std::mutex call_mu_;   // serializes calls
  std::mutex write_mu_;  // guards fd_ replacement and every write (cancel uses only this)
  ipc::UniqueFd fd_;
  std::unique_ptr<ipc::FrameReader> reader_;
  ipc::HelloOk server_;
  std::atomic<uint64_t> next_id_;
  uint64_t active_id_ = 0;            // guarded by write_mu_
  std::deque<uint64_t> pre_cancelled_;  // guarded by write_mu_
};

/// Status as JSON text ({"model":..,"queue_depth":..,"active_requests":..,
/// "tokens_per_s":..,"details":{..}}).
std::string status_to_json(const ipc::Status& s, int indent = -1);

}  // namespace omni::sdk
