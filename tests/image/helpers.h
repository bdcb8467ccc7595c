#pragma once
// Shared helpers of the image tests: reading files and the Pillow references of
// tests/data/image (made by tools/gen_image_refs.py).
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "image/decode.h"

namespace omni::image::test {

inline std::string data_path(const std::string& rel) { return std::string(OMNI_TEST_DATA) + "/" + rel; }

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

inline const nlohmann::json& refs() {
  static const nlohmann::json j = nlohmann::json::parse(read_bytes(data_path("image/refs.json")));
  return j;
}

// Pillow's convert("RGB").tobytes() of reference `name`, with its size.
inline Image ref_image(const std::string& name) {
  Image img;
  img.width = refs().at(name)[0].get<int>();
  img.height = refs().at(name)[1].get<int>();
  img.rgb = read_bytes(data_path("image/" + name + ".rgb"));
  return img;
}

inline Image decode_file(const std::string& rel, DecodeLimits limits = {}) {
  limits.min_side = 1;
  return load_image_file(data_path(rel), limits);
}

struct Diff {
  int max_abs = 0;
  size_t differing = 0;
};
inline Diff compare(const Image& a, const Image& b) {
  Diff d;
  for (size_t i = 0; i < a.rgb.size() && i < b.rgb.size(); ++i) {
    int e = std::abs(int(a.rgb[i]) - int(b.rgb[i]));
    if (e) ++d.differing;
    if (e > d.max_abs) d.max_abs = e;
  }
  return d;
}

}  // namespace omni::image::test
