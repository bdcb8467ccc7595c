// ipc/error.h - typed protocol errors shared by daemon and SDK.
//
// Every violation found while reading untrusted input (frame length, msgpack
// structure, schema, descriptors, images) is reported as ipc::IpcError carrying an
// ErrorCode and a human-readable message that names the offending field. The
// server turns it into an `error` frame (see docs/protocol.md); the code names
// below are exactly the strings used on the wire.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace omni::ipc {

enum class ErrorCode : uint8_t {
  ok = 0,
  bad_frame,            // framing broken: zero length, undecodable msgpack, not a map, trailing bytes
  too_large,            // a declared size exceeds a limit (frame, string, array, map, depth, fds, image)
  bad_message,          // schema: unknown type, missing required field, wrong type, value out of range
  unsupported_version,  // handshake: protocol major version differs
  busy,                 // server saturated (queue full, too many connections, socket in use)
  not_allowed,          // peer credentials rejected / message not allowed in this state
  bad_image,            // image descriptor unsealed, wrong size, not a memfd, undecodable image
  internal,             // server-side failure unrelated to the request's validity
  not_ready,            // request before handshake, or model still loading
  unavailable,          // local only (never on the wire): connection lost / daemon unreachable
  timeout,              // local only: I/O timeout in the SDK
};

/// Wire name of a code ("bad_frame", ...).
const char* error_code_name(ErrorCode c) noexcept;
/// Parse a wire name; unknown names map to ErrorCode::internal (forward compatibility).
ErrorCode error_code_from_name(std::string_view s) noexcept;

struct Error {
  ErrorCode code = ErrorCode::ok;
  std::string message;
};

class IpcError : public std::runtime_error {
 public:
  IpcError(ErrorCode code, const std::string& message)
      : std::runtime_error(message), code_(code) {}
  ErrorCode code() const noexcept { return code_; }
  Error error() const { return Error{code_, what()}; }

 private:
  ErrorCode code_;
};

}  // namespace omni::ipc
