// EXIF orientation: a minimal, bounds-checked TIFF IFD0 reader for tag 0x0112, and the eight
// transposes of Pillow's ImageOps.exif_transpose. Parsing it ourselves keeps one code path for
// JPEG APP1, PNG eXIf and WebP EXIF payloads (which differ in the "Exif\0\0" prefix).
#include <cstring>

#include "image/decode_internal.h"

namespace omni::image::detail {

int exif_orientation(const uint8_t* data, size_t size) {
  if (size >= 6 && std::memcmp(data, "Exif\0\0", 6) == 0) {
    data += 6;
    size -= 6;
  }
  if (size < 8) return 1;
  bool le;
  if (data[0] == 'I' && data[1] == 'I') le = true;
  else if (data[0] == 'M' && data[1] == 'M') le = false;
  else return 1;
  auto u16 = [&](size_t o) -> uint32_t {
    return le ? (data[o] | (data[o + 1] << 8)) : ((data[o] << 8) | data[o + 1]);
  };
  auto u32 = [&](size_t o) -> uint32_t {
    return le ? (u16(o) | (u16(o + 2) << 16)) : ((u16(o) << 16) | u16(o + 2));
  };
  if (u16(2) != 42) return 1;
  const uint32_t ifd = u32(4);
  if (ifd > size - 2) return 1;
  const uint32_t count = u16(ifd);
  for (uint32_t i = 0; i < count; ++i) {
    const size_t e = ifd + 2 + static_cast<size_t>(i) * 12;
    if (e + 12 > size) return 1;
    if (u16(e) != 0x0112) continue;
    if (u16(e + 2) != 3 /* SHORT */) return 1;
    const uint32_t v = u16(e + 8);
    return v >= 1 && v <= 8 ? static_cast<int>(v) : 1;
  }
  return 1;
}

Image apply_orientation(const Image& img, int orientation) {
  if (orientation < 2 || orientation > 8) return img;
  const int W = img.width, H = img.height;
  const bool swap = orientation >= 5;
  Image out;
  out.width = swap ? H : W;
  out.height = swap ? W : H;
  out.rgb.resize(img.rgb.size());
  for (int y = 0; y < out.height; ++y) {
    for (int x = 0; x < out.width; ++x) {
      int sx = x, sy = y;
      switch (orientation) {
        case 2: sx = W - 1 - x; break;                         // FLIP_LEFT_RIGHT
        case 3: sx = W - 1 - x; sy = H - 1 - y; break;         // ROTATE_180
        case 4: sy = H - 1 - y; break;                         // FLIP_TOP_BOTTOM
        case 5: sx = y; sy = x; break;                         // TRANSPOSE
        case 6: sx = y; sy = H - 1 - x; break;                 // ROTATE_270 (90° clockwise)
        case 7: sx = W - 1 - y; sy = H - 1 - x; break;         // TRANSVERSE
        case 8: sx = W - 1 - y; sy = x; break;                 // ROTATE_90 (counter-clockwise)
      }
      std::memcpy(&out.rgb[(static_cast<size_t>(y) * out.width + x) * 3], img.pixel(sx, sy), 3);
    }
  }
  return out;
}

}  // namespace omni::image::detail
