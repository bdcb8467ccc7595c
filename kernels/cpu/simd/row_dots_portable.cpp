// Plain C++ row dots (kernels/cpu/simd/row_dots.h): any CPU, and the yardstick the SIMD
// versions are tested against (tests/kernels/test_row_dots.cpp).
#include <cstring>

#include "kernels/cpu/simd/row_dots.h"

namespace omni::kernels {

namespace {

struct F32 {
  static float at(const uint8_t* w, int64_t k) {
    float f;
    std::memcpy(&f, w + 4 * k, 4);
    return f;
  }
};
struct Bf16 {
  static float at(const uint8_t* w, int64_t k) {
    uint16_t h;
    std::memcpy(&h, w + 2 * k, 2);
    return bf16_to_f32(h);
  }
};
struct F16 {
  static float at(const uint8_t* w, int64_t k) {
    uint16_t h;
    std::memcpy(&h, w + 2 * k, 2);
    return f16_to_f32(h);
  }
};

template <class L>
void dots(const void* wv, const float* x, int64_t ldx, int rows, int64_t K, float* y) {
  const auto* w = static_cast<const uint8_t*>(wv);
  float acc[kMaxDotRows] = {};
  for (int64_t k = 0; k < K; ++k) {
    const float wk = L::at(w, k);
    for (int r = 0; r < rows; ++r) acc[r] += wk * x[r * ldx + k];
  }
  for (int r = 0; r < rows; ++r) y[r] = acc[r];
}

// Q8_0: the block's sum of q·x, then times its scale.
void dots_q8(const void* wv, const float* x, int64_t ldx, int rows, int64_t K, float* y) {
  const auto* w = static_cast<const uint8_t*>(wv);
  float acc[kMaxDotRows] = {};
  for (int64_t b = 0; b < K; b += kQ8Block) {
    const int64_t n = K - b < kQ8Block ? K - b : kQ8Block;
    uint16_t h;
    std::memcpy(&h, w, 2);
    const float d = f16_to_f32(h);
    const auto* q = reinterpret_cast<const int8_t*>(w + 2);
    for (int r = 0; r < rows; ++r) {
      float s = 0;
      for (int64_t i = 0; i < n; ++i) s += float(q[i]) * x[r * ldx + b + i];
      acc[r] += s * d;
    }
    w += 2 + n;
  }
  for (int r = 0; r < rows; ++r) y[r] = acc[r];
}

const RowDotKernels kPortable{"portable", &dots<F32>, &dots<Bf16>, &dots<F16>, &dots_q8};

}  // namespace

const RowDotKernels& portable_row_dots() { return kPortable; }

#if !defined(__x86_64__)
const RowDotKernels* avx2_row_dots() { return nullptr; }
const RowDotKernels* avx512_row_dots() { return nullptr; }
#endif

}  // namespace omni::kernels
