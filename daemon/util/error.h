#pragma once
// One error type for the engine: a message meant for a person, naming the file,
// tensor, field or input that is wrong. main() prints it and exits non-zero.
#include <stdexcept>
#include <string>

namespace omni {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace omni
