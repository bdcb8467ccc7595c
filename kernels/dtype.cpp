#include "kernels/dtype.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace omni::kernels {

void convert_to_f32(const void* src, DType from, float* dst, size_t n) {
  switch (from) {
    case DType::F32:
      std::memcpy(dst, src, n * 4);
      return;
    case DType::BF16: {
      auto* s = static_cast<const uint8_t*>(src);
      for (size_t i = 0; i < n; ++i) {   // memcpy: a mapped checkpoint tensor may be oddly aligned
        uint16_t h;
        std::memcpy(&h, s + 2 * i, 2);
        dst[i] = bf16_to_f32(h);
      }
      return;
    }
    case DType::F16: {
      auto* s = static_cast<const uint8_t*>(src);
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, s + 2 * i, 2);
        dst[i] = f16_to_f32(h);
      }
      return;
    }
    case DType::I32: {
      auto* s = static_cast<const int32_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = static_cast<float>(s[i]);
      return;
    }
    case DType::Q8_0:
      convert_rows_to_f32(src, from, 1, int64_t(n), dst);
      return;
  }
}

namespace {

void q8_row_to_f32(const uint8_t* src, int64_t cols, float* dst) {
  for (int64_t b = 0; b < cols; b += kQ8Block) {
    const int64_t n = std::min(kQ8Block, cols - b);
    uint16_t h;
    std::memcpy(&h, src, 2);
    const float d = f16_to_f32(h);
    const auto* q = reinterpret_cast<const int8_t*>(src + 2);
    for (int64_t i = 0; i < n; ++i) dst[b + i] = float(q[i]) * d;
    src += 2 + n;
  }
}

void q8_row_from_f32(const float* src, int64_t cols, uint8_t* dst) {
  for (int64_t b = 0; b < cols; b += kQ8Block) {
    const int64_t n = std::min(kQ8Block, cols - b);
    float amax = 0;
    for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(src[b + i]));
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    const uint16_t h = f32_to_f16(d);
    std::memcpy(dst, &h, 2);
    auto* q = reinterpret_cast<int8_t*>(dst + 2);
    for (int64_t i = 0; i < n; ++i) q[i] = static_cast<int8_t>(std::round(src[b + i] * id));
    dst += 2 + n;
  }
}

}  // namespace

void convert_rows_to_f32(const void* src, DType from, int64_t rows, int64_t cols, float* dst) {
  if (from != DType::Q8_0) {
    convert_to_f32(src, from, dst, size_t(rows * cols));
    return;
  }
  const auto* s = static_cast<const uint8_t*>(src);
  const size_t rb = row_bytes(from, cols);
  for (int64_t r = 0; r < rows; ++r) q8_row_to_f32(s + size_t(r) * rb, cols, dst + r * cols);
}

void convert_rows_from_f32(const float* src, DType to, int64_t rows, int64_t cols, void* dst) {
  const size_t n = size_t(rows * cols);
  auto* d = static_cast<uint8_t*>(dst);
  switch (to) {
    case DType::F32:
      std::memcpy(dst, src, n * 4);
      return;
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_bf16(src[i]);
        std::memcpy(d + 2 * i, &h, 2);
      }
      return;
    case DType::F16:
      for (size_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_f16(src[i]);
        std::memcpy(d + 2 * i, &h, 2);
      }
      return;
    case DType::Q8_0: {
      const size_t rb = row_bytes(to, cols);
      for (int64_t r = 0; r < rows; ++r) q8_row_from_f32(src + r * cols, cols, d + size_t(r) * rb);
      return;
    }
    case DType::I32:
      throw std::invalid_argument("convert_rows_from_f32: I32 is not a float type");
  }
}

}  // namespace omni::kernels
