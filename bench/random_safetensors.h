#pragma once
// A model.safetensors of random bf16 weights (N(0, 0.02), every 997th value +1 so norms are
// not degenerate) for the given tensor names and shapes, as the benchmarks' synthetic
// checkpoints need it; written in 1 Mi-value chunks so a large model never sits in memory.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kernels/dtype.h"

namespace omni::bench {

using TensorShapes = std::vector<std::pair<std::string, std::vector<int64_t>>>;

inline void write_random_bf16_safetensors(const std::filesystem::path& file, const TensorShapes& tensors) {
  nlohmann::json header;
  uint64_t off = 0;
  for (const auto& [n, s] : tensors) {
    uint64_t cnt = 1;
    for (auto d : s) cnt *= uint64_t(d);
    header[n] = {{"dtype", "BF16"}, {"shape", s}, {"data_offsets", {off, off + cnt * 2}}};
    off += cnt * 2;
  }
  const std::string hs = header.dump();
  std::ofstream f(file, std::ios::binary);
  const uint64_t hl = hs.size();
  f.write(reinterpret_cast<const char*>(&hl), 8);
  f << hs;
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<uint16_t> buf(1 << 20);
  for (uint64_t done = 0; done < off / 2;) {
    const size_t n = size_t(std::min<uint64_t>(buf.size(), off / 2 - done));
    for (size_t i = 0; i < n; ++i) buf[i] = kernels::f32_to_bf16(nd(rng) + 1.0f * (i % 997 == 0));
    f.write(reinterpret_cast<const char*>(buf.data()), std::streamsize(n * 2));
    done += n;
  }
}

}  // namespace omni::bench
