#include "image/normalize.h"

namespace omni::image {

// The reference does astype(float32) / 255, then (x - mean) / std with float32 mean/std, so
// every operation here is a float32 operation in the same order (bit-identical results).
std::vector<float> normalize_chw(const Image& img, const std::array<float, 3>& mean,
                                 const std::array<float, 3>& std) {
  const size_t plane = static_cast<size_t>(img.width) * img.height;
  std::vector<float> out(plane * 3);
  for (int c = 0; c < 3; ++c) {
    float* dst = &out[c * plane];
    for (size_t i = 0; i < plane; ++i) {
      const float v = static_cast<float>(img.rgb[i * 3 + c]) / 255.0f;
      dst[i] = (v - mean[c]) / std[c];
    }
  }
  return out;
}

}  // namespace omni::image
