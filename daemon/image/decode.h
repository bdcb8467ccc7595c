#pragma once
// Decoding encoded pictures (JPEG, PNG, WebP) into 8-bit RGB the way Pillow's
// Image.open(...).convert("RGB") does, with limits checked before any pixel is decoded and
// the decoding work itself bounded and interruptible.
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
  // Scans one JPEG may have. Real progressive files have about 10 (libjpeg's default script: 6
  // for gray, 10 for colour); each scan re-walks every coefficient block of its components,
  // so thousands of empty scans cost minutes of CPU. 500 is the limit libjpeg-turbo's
  // TurboJPEG (TJFLAG_LIMITSCANS) and its fuzzers use.
  int max_jpeg_scans = 500;
  // Decoding work per picture, in samples: one component of one pixel decoded once. A JPEG
  // costs 64 per coefficient block per scan that codes it (empty scans cost as much to walk
  // as full ones); PNG and WebP decode each sample once (width*height*channels). 1.6e9 is 13
  // full passes over a max_pixels (40 MP) three-component picture, or 10 over a CMYK one,
  // where libjpeg's progressive script makes 4.7 (colour) or 6 (gray, CMYK): every picture
  // within max_pixels passes. The 6000x6000 file with 20,000 empty scans is stopped at its
  // 45th scan instead of its 20,000th (about 0.2 s of walking instead of 85 s). Raise it with
  // max_pixels.
  uint64_t max_decode_work = 1'600'000'000;
};

// Polled while decoding: at least once per JPEG scan and output row, per PNG row of every
// interlace pass, per WebP incremental chunk. When it returns true decoding stops at once
// with DecodeInterrupted (how callers implement cancellation, deadlines and shutdown). It
// is called on the decoding thread and should be cheap (an atomic load, a clock read).
using DecodeInterrupt = std::function<bool()>;

// The picture itself is bad or over a limit: every refusal of the input throws this
// (empty, oversized, unknown format, corrupt, truncated, over a limit, unreadable file).
// The message starts with the picture's name.
class DecodeError : public omni::Error {
 public:
  explicit DecodeError(const std::string& what) : omni::Error(what, ipc::ErrorCode::bad_image) {}
};

// Decoding was stopped by the caller's DecodeInterrupt; says nothing about the picture.
class DecodeInterrupted : public omni::Error {
 public:
  using omni::Error::Error;
};

// `name` (a file path, "request image 2", ...) prefixes every error message.
// Throws DecodeError for bad input, DecodeInterrupted when `interrupted` stops it; an
// exception thrown by `interrupted` itself is passed on after the decoder is cleaned up.
Image decode_image(const uint8_t* data, size_t size, const DecodeLimits& limits,
                   const std::string& name, const DecodeInterrupt& interrupted = {});

// Reads the whole file (refusing files above max_encoded_bytes before reading) and decodes it.
Image load_image_file(const std::string& path, const DecodeLimits& limits,
                      const DecodeInterrupt& interrupted = {});

}  // namespace omni::image
