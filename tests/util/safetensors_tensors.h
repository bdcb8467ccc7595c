#pragma once
// A safetensors file as a map of named tensors (dtype string, shape, raw bytes) that a test
// can edit and write back: damaged and re-quantized checkpoints made at run time.
#include <cstdint>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace omni::test {

struct StTensor {
  std::string dtype;   // "BF16", "F32", "U8", ...
  std::vector<int64_t> shape;
  std::string data;
};
using StTensors = std::map<std::string, StTensor>;

inline StTensors read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string b{std::istreambuf_iterator<char>(in), {}};
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(b.at(size_t(i)));
  const nlohmann::json h = nlohmann::json::parse(b.substr(8, n));
  StTensors out;
  for (auto it = h.begin(); it != h.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const auto& off = it.value()["data_offsets"];
    const size_t begin = off[0].get<size_t>(), end = off[1].get<size_t>();
    out[it.key()] = {it.value()["dtype"], it.value()["shape"].get<std::vector<int64_t>>(), b.substr(8 + n + begin, end - begin)};
  }
  return out;
}

inline void write_safetensors(const std::string& path, const StTensors& tensors) {
  nlohmann::json h = nlohmann::json::object();
  std::string body;
  for (const auto& [name, t] : tensors) {
    h[name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {body.size(), body.size() + t.data.size()}}};
    body += t.data;
  }
  const std::string hs = h.dump();
  std::string len(8, '\0');
  for (int i = 0; i < 8; ++i) len[size_t(i)] = char((hs.size() >> (8 * i)) & 0xff);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << len << hs << body;
}

}  // namespace omni::test
