#pragma once
// llama.cpp's Q8_0 rule (quantize_row_q8_0_ref), written out independently of
// kernels/dtype.cpp for the tests that hold the engine to it: per block of 32 weights of a
// row (the last block shorter when the row is), d = max|x| / 127 stored as f16 and
// q = round(x / d), weight = q · d.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/dtype.h"

namespace omni::test {

inline std::vector<uint8_t> q8_0_reference(const float* x, int64_t K) {
  std::vector<uint8_t> out;
  for (int64_t b = 0; b < K; b += 32) {
    const int64_t n = std::min<int64_t>(32, K - b);
    float amax = 0;
    for (int64_t j = 0; j < n; ++j) amax = std::max(amax, std::fabs(x[b + j]));
    const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
    const uint16_t h = kernels::f32_to_f16(d);
    out.push_back(uint8_t(h & 0xff));
    out.push_back(uint8_t(h >> 8));
    for (int64_t j = 0; j < n; ++j) out.push_back(uint8_t(int8_t(std::lround(x[b + j] * id))));
  }
  return out;
}

// What a row of K weights becomes through Q8_0: each value rounded to its block's step.
inline void q8_0_round_trip(float* x, int64_t K) {
  for (int64_t b = 0; b < K; b += 32) {
    const int64_t n = std::min<int64_t>(32, K - b);
    float amax = 0;
    for (int64_t j = 0; j < n; ++j) amax = std::max(amax, std::fabs(x[b + j]));
    const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
    const float stored = kernels::f16_to_f32(kernels::f32_to_f16(d));
    for (int64_t j = 0; j < n; ++j) x[b + j] = float(std::lround(x[b + j] * id)) * stored;
  }
}

}  // namespace omni::test
