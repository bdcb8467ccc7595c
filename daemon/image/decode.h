#pragma once
// Decoding encoded pictures (JPEG, PNG, WebP) into 8-bit RGB the way Pillow's
// Image.open(...).convert("RGB") does, with limits checked before any pixel is decoded.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "image/image.h"
#include "util/error.h"

namespace omni::image {

struct DecodeLimits {
  size_t max_encoded_bytes = 64ull << 20;  // 64 MiB of compressed input
  uint64_t max_pixels = 40'000'000;        // width*height from the header (decompression bombs)
  int min_side = 8;                        // refuse slivers like 1x1 or 100000x1
  // Rotate/flip by the EXIF Orientation tag (Pillow's ImageOps.exif_transpose). The reference
  // MiniCPM-V pipeline does NOT do this (plain Image.open); set false to match it bit for bit.
  bool apply_exif_orientation = true;
};

using DecodeInterrupt = std::function<bool()>;
class DecodeError : public omni::Error {
 public:
  using omni::Error::Error;
};
class DecodeInterrupted : public omni::Error {
 public:
  using omni::Error::Error;
};
Image decode_image(const uint8_t* data, size_t size, const DecodeLimits& limits, const std::string& name,
                   const DecodeInterrupt& interrupted);

// `name` (a file path, "request image 2", ...) prefixes every error message.
// Throws omni::Error for empty/oversized/unknown/corrupt/truncated input and limit violations.
Image decode_image(const uint8_t* data, size_t size, const DecodeLimits& limits,
                   const std::string& name);

// Reads the whole file (refusing files above max_encoded_bytes before reading) and decodes it.
Image load_image_file(const std::string& path, const DecodeLimits& limits);

}  // namespace omni::image
