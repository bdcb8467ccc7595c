#pragma once
// Fixture files of the tiny MiniCPM-V checkpoints, read one way by every suite.
#include <fstream>
#include <string>
#include <vector>

#include "model/chat_model.h"
#include "util/golden.h"

namespace omni::test {

// A whole file as bytes in a string (empty when it cannot be read).
inline std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

// The picture of a minicpmv26-tiny case ("case_small", "case_wide"), named after the case.
inline ImageInput tiny_picture(const std::string& c) {
  const std::string b = slurp(data("minicpmv26-tiny/" + c + "/image.png"));
  return ImageInput::from_bytes(c, std::vector<uint8_t>(b.begin(), b.end()));
}

}  // namespace omni::test
