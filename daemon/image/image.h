#pragma once
// The in-memory picture every step of the image path works on: 8-bit RGB, row-major,
// 3 bytes per pixel, no padding (the layout Pillow's "RGB" mode exposes via tobytes()).
#include <cstddef>
#include <cstdint>
#include <vector>

namespace omni::image {

struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // width * height * 3

  const uint8_t* pixel(int x, int y) const { return &rgb[(static_cast<size_t>(y) * width + x) * 3]; }
};

// Pillow Image.crop((x, y, x + w, y + h)); the box must lie inside the image (throws otherwise).
Image crop(const Image& img, int x, int y, int w, int h);

}  // namespace omni::image
