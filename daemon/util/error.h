#pragma once
// One error type for the engine: a message meant for a person, naming the file,
// tensor, field or input that is wrong, and the wire code it reaches a client with
// (ipc/error.h; docs/protocol.md lists them). The code is set where the error arises:
// a request's bad input says so there (bad_message, too_large, bad_image); anything
// else is the engine's own failure (internal). Nothing downstream reads the message
// to classify it. main() prints it and exits non-zero.
#include <stdexcept>
#include <string>

#include "ipc/error.h"

namespace omni {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what, ipc::ErrorCode code = ipc::ErrorCode::internal)
      : std::runtime_error(what), code_(code) {}
  ipc::ErrorCode code() const noexcept { return code_; }

 private:
  ipc::ErrorCode code_;
};

}  // namespace omni
