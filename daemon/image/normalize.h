#pragma once
// Pixel normalisation of one piece: float32 [3, H, W], (v/255 - mean[c]) / std[c], computed in
// float32 like the reference (numpy float32 arrays).
#include <array>
#include <vector>

#include "image/image.h"

namespace omni::image {

std::vector<float> normalize_chw(const Image& img, const std::array<float, 3>& mean,
                                 const std::array<float, 3>& std);

}  // namespace omni::image
