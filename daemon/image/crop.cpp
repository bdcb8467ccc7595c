#include <cstring>

#include "image/image.h"
#include "util/error.h"

namespace omni::image {

Image crop(const Image& img, int x, int y, int w, int h) {
  if (x < 0 || y < 0 || w <= 0 || h <= 0 || x + w > img.width || y + h > img.height)
    throw Error("crop box (" + std::to_string(x) + ", " + std::to_string(y) + ", " +
                std::to_string(w) + "x" + std::to_string(h) + ") outside a " +
                std::to_string(img.width) + "x" + std::to_string(img.height) + " image");
  Image out;
  out.width = w;
  out.height = h;
  out.rgb.resize(static_cast<size_t>(w) * h * 3);
  for (int r = 0; r < h; ++r)
    std::memcpy(&out.rgb[static_cast<size_t>(r) * w * 3], img.pixel(x, y + r),
                static_cast<size_t>(w) * 3);
  return out;
}

}  // namespace omni::image
