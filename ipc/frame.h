// ipc/frame.h - framing of the control socket.
//
// Wire format: a frame is a 4-byte big-endian unsigned length N followed by N bytes
// of payload; the payload is exactly one msgpack map (see ipc/messages.h).
// Descriptors (SCM_RIGHTS) travel with the sendmsg() that carries the frame's
// first byte; the sender puts a whole frame in one sendmsg (send_frame does).
//
// FrameReader works for both the daemon's Boost.Asio code (feed it what a
// non-blocking recv_into() returned after async_wait(wait_read)) and the SDK's
// blocking code. It never allocates for a frame before checking the declared
// length against Limits::max_frame_bytes, and it owns received descriptors
// (UniqueFd), so every error path closes them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <vector>

#include <msgpack.hpp>

#include "ipc/error.h"
#include "ipc/limits.h"
#include "ipc/unique_fd.h"

namespace omni::ipc {

inline constexpr std::size_t kFrameHeaderBytes = 4;

/// One complete frame: its payload and the descriptors that came with it.
struct Frame {
  std::vector<uint8_t> payload;
  std::vector<UniqueFd> fds;
};

/// Prepend the 4-byte big-endian length to a payload. Throws IpcError(too_large)
/// when the payload exceeds 4 GiB - 1 (callers should keep it under max_frame).
std::vector<uint8_t> encode_frame(std::span<const uint8_t> payload);

/// Accumulates stream bytes and yields complete frames.
/// Once next() has thrown, the stream is unrecoverable (framing is lost): send an
/// error frame and close the connection.
class FrameReader {
 public:
  explicit FrameReader(const Limits& limits = {}) : limits_(limits) {}

  /// Append bytes received by one recvmsg() together with the descriptors that
  /// came with that same recvmsg() (ownership taken; closed on any error).
  /// Throws IpcError(too_large) when one recvmsg() brought more than
  /// max_fds_per_frame descriptors, or when descriptors of more than two frames are
  /// waiting (take complete frames with next() after every feed).
  void feed(std::span<const uint8_t> data, std::vector<UniqueFd> fds = {});

  /// The next complete frame, or nullopt when more bytes are needed.
  /// Throws IpcError: bad_frame (zero length, descriptors not at a frame start),
  /// too_large (declared length > max_frame_bytes).
  std::optional<Frame> next();

  std::size_t buffered_bytes() const noexcept { return buf_.size() - pos_; }
  std::size_t pending_fds() const noexcept;
  const Limits& limits() const noexcept { return limits_; }

 private:
  struct FdBatch {
    uint64_t begin, end;  // stream offsets of the chunk they arrived with
    std::vector<UniqueFd> fds;
  };
  Limits limits_;
  std::vector<uint8_t> buf_;
  std::size_t pos_ = 0;       // read position in buf_
  uint64_t stream_pos_ = 0;   // stream offset of buf_[pos_]
  uint64_t stream_end_ = 0;   // stream offset after the last byte fed
  std::deque<FdBatch> batches_;
  bool failed_ = false;
};

/// Parse a frame payload as one msgpack map, with explicit limits:
/// a pre-pass rejects any array/map whose declared count exceeds the limit or the
/// payload size, depth > max_depth and every ext; then msgpack::unpack runs with
/// unpack_limit(array, map, str, bin, ext=0, depth) and no reference function.
/// Throws IpcError: bad_frame (not msgpack, not a map, trailing bytes),
/// too_large (a limit exceeded). Never lets a msgpack exception escape.
msgpack::object_handle unpack_payload(std::span<const uint8_t> payload, const Limits& limits);

}  // namespace omni::ipc
