#pragma once
// Reading and writing NumPy .npy files (format 1.0/2.0, little-endian, C order):
// the exchange format of the goldens and of `omnid dump`.
#include <cstdint>
#include <string>
#include <vector>

namespace omni {

struct NpyArray {
  std::string descr;             // numpy dtype string, e.g. "<f4", "<i4", "|b1"
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;    // raw element data, C order

  int64_t numel() const;
  // Element access converted to the requested type; throws when the dtype differs in kind.
  std::vector<float> as_float() const;
  std::vector<int32_t> as_int32() const;
};

NpyArray read_npy(const std::string& path);
void write_npy(const std::string& path, const float* data, const std::vector<int64_t>& shape);
void write_npy(const std::string& path, const int32_t* data, const std::vector<int64_t>& shape);

}  // namespace omni
