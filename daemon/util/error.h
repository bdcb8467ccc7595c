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

// A mistake in how omnid was asked to run (a flag, a setting, a file named on the command
// line, a socket path or port it cannot have), found before any work starts: main() exits
// 2 for it, 1 for every other failure (docs/operations.md, Exit codes).
class UsageError : public Error {
 public:
  explicit UsageError(const std::string& what) : Error(what, ipc::ErrorCode::bad_message) {}
};

// Runs `check`; an omni::Error or std::exception it throws becomes a UsageError (with
// `what` in front when given): for checks made by code that does not know it runs before
// the model loads (the planner, the sampler, ipc/socket).
template <class F>
void as_usage_error(const std::string& what, F&& check) {
  try {
    check();
  } catch (const UsageError&) {
    throw;
  } catch (const std::exception& e) {
    throw UsageError(what.empty() ? std::string(e.what()) : what + ": " + e.what());
  }
}

}  // namespace omni
