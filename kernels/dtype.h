#pragma once
// Element types the engine stores and computes in, and host-side conversions.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace omni::kernels {

// Q8_0 is a block type, for weight matrices on cpu devices (--cpu-weights int8): each row
// of K weights is cut into blocks of kQ8Block, each stored as its f16 scale d followed by
// its int8 values q (weight = q·d), llama.cpp's Q8_0 layout; a row's last block holds the
// K % kQ8Block rest when K is not a multiple. Rows are whole numbers of bytes, so row views
// work; elements are not addressable, so dtype_size() is 0 and sizes come from row_bytes().
enum class DType : uint8_t { F32, F16, BF16, I32, Q8_0 };

inline constexpr int64_t kQ8Block = 32;

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::I32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::Q8_0: return 0;
  }
  return 0;
}

// Bytes of one row of `cols` elements.
constexpr size_t row_bytes(DType t, int64_t cols) {
  if (t != DType::Q8_0) return size_t(cols) * dtype_size(t);
  const int64_t full = cols / kQ8Block, rest = cols % kQ8Block;
  return size_t(full) * (2 + kQ8Block) + (rest ? size_t(2 + rest) : 0);
}

constexpr std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::I32: return "I32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::Q8_0: return "Q8_0";
  }
  return "?";
}

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round-to-nearest-even, NaN kept quiet: the rounding torch's .to(bfloat16) uses.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

inline float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t man = h & 0x3ff;
  uint32_t u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else {  // subnormal: renormalise
      exp = 127 - 15 + 1;
      while ((man & 0x400) == 0) { man <<= 1; --exp; }
      man &= 0x3ff;
      u = sign | (exp << 23) | (man << 13);
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (man << 13);
  } else {
    u = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round-to-nearest-even float32 -> float16 (overflow to inf, subnormals kept).
inline uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t absu = u & 0x7fffffffu;
  if (absu > 0x7f800000u) return uint16_t(sign | 0x7e00u);            // NaN
  if (absu >= 0x477ff000u) return uint16_t(sign | 0x7c00u);           // overflow -> inf
  if (absu < 0x38800000u) {                                           // subnormal or zero
    if (absu < 0x33000000u) return uint16_t(sign);
    const uint32_t man = (absu & 0x7fffffu) | 0x800000u;
    const int shift = 126 - int(absu >> 23);                          // 14..24
    const uint32_t rem = man & ((1u << shift) - 1);
    const uint32_t mid = 1u << (shift - 1);
    uint32_t h = man >> shift;
    if (rem > mid || (rem == mid && (h & 1))) ++h;
    return uint16_t(sign | h);
  }
  uint32_t h = ((absu >> 13) - (112u << 10));
  const uint32_t rem = absu & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) ++h;
  return uint16_t(sign | h);
}

// Converts n elements of `src` (dtype `from`, not Q8_0) into float32.
void convert_to_f32(const void* src, DType from, float* dst, size_t n);
// Converts `rows` rows of `cols` elements, stored back to back, from or into float32
// (every dtype; to Q8_0 as llama.cpp's quantize_row_q8_0_ref: d = max|x|/127 per block,
// q = round half away from zero of x/d, d kept as f16).
void convert_rows_to_f32(const void* src, DType from, int64_t rows, int64_t cols, float* dst);
void convert_rows_from_f32(const float* src, DType to, int64_t rows, int64_t cols, void* dst);

}  // namespace omni::kernels
