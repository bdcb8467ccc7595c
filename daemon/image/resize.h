#pragma once
// Pillow-exact resampling: Image.resize(size, Image.BICUBIC) for an RGB image, including
// Pillow's antialiasing (support widened by the downscale factor) and its 8-bit fixed-point
// arithmetic, so that every output byte equals Pillow's.
#include "image/image.h"

namespace omni::image {

Image resize_bicubic(const Image& img, int width, int height);

}  // namespace omni::image
