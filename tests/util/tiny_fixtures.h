#pragma once
// Fixture files of the tiny MiniCPM-V checkpoints, read one way by every suite.
#include <fstream>
#include <string>
#include <vector>

#include "model/chat_model.h"
#include "model/prefix_hash.h"
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

// Two pictures of the same size (so the same placeholder ids) and different pixels,
// raw RGB 96x80: a pure red and a pure blue.
struct SameSizePictures {
  static constexpr int kWidth = 96, kHeight = 80;
  std::vector<uint8_t> red, blue;
  SameSizePictures() : red(size_t(kWidth) * kHeight * 3, 0), blue(red.size(), 0) {
    for (size_t i = 0; i < red.size(); i += 3) red[i] = 210, blue[i + 2] = 210;
  }
  static ImageInput input(const std::vector<uint8_t>& px, const char* name) {
    ImageInput in = ImageInput::from_bytes(name, px);
    in.rgb_width = kWidth;
    in.rgb_height = kHeight;
    return in;
  }
};

// The text rows of a prompt ahead of its first picture row: all two prompts that differ
// only in their picture's pixels may share.
inline int64_t rows_before_picture(const ChatModel& model, const ImageInput& picture, const std::string& question) {
  PrefixHasher h = PrefixHasher::for_prompt(model.prepare({picture}, question), 0);
  int64_t n = 0;
  while (h.row(n).image < 0) ++n;
  return n;
}

}  // namespace omni::test
