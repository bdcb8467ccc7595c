#pragma once
// Per-format decoders behind decode_image(). Each one calls check_header() with the
// dimensions from the file header before allocating pixel memory, and returns the raw
// EXIF (TIFF) payload when the file carries one, for the orientation step.
#include <cstdint>
#include <string>
#include <vector>

#include "image/decode.h"

namespace omni::image::detail {

struct Decoded {
  Image image;
  std::vector<uint8_t> exif;  // TIFF structure, possibly prefixed by "Exif\0\0"; empty if none
};

// Throws omni::Error("<name>: ...") when the header dimensions break the limits.
void check_header(uint64_t width, uint64_t height, const DecodeLimits& limits,
                  const std::string& name);

Decoded decode_png(const uint8_t* data, size_t size, const DecodeLimits& limits,
                   const std::string& name);
Decoded decode_jpeg(const uint8_t* data, size_t size, const DecodeLimits& limits,
                    const std::string& name);
Decoded decode_webp(const uint8_t* data, size_t size, const DecodeLimits& limits,
                    const std::string& name);

// EXIF Orientation tag (1..8) from a TIFF payload (with or without the "Exif\0\0" prefix);
// 1 when absent or unreadable: a broken EXIF block never fails the decode.
int exif_orientation(const uint8_t* data, size_t size);
// Pillow ImageOps.exif_transpose for orientation 1..8.
Image apply_orientation(const Image& img, int orientation);

}  // namespace omni::image::detail
