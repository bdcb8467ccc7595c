// WebP through libwebp: the still image (lossy or lossless) decoded to RGB; alpha, if any, is
// dropped without compositing, as Pillow's convert("RGB") does. Animated files are refused.
#include <webp/decode.h>

#include <cstring>

#include "image/decode_internal.h"
#include "util/error.h"

namespace omni::image::detail {
namespace {

uint32_t le32(const uint8_t* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24);
}

// The payload of the "EXIF" chunk of an extended (VP8X) RIFF container, if any.
std::vector<uint8_t> find_exif_chunk(const uint8_t* data, size_t size) {
  size_t pos = 12;
  while (pos + 8 <= size) {
    const uint32_t len = le32(data + pos + 4);
    if (len > size - pos - 8) break;
    if (std::memcmp(data + pos, "EXIF", 4) == 0)
      return std::vector<uint8_t>(data + pos + 8, data + pos + 8 + len);
    pos += 8 + len + (len & 1);
  }
  return {};
}

const char* status_text(VP8StatusCode s) {
  switch (s) {
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "bitstream error";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_SUSPENDED: return "suspended";
    case VP8_STATUS_USER_ABORT: return "aborted";
    case VP8_STATUS_NOT_ENOUGH_DATA: return "not enough data (file is truncated)";
    default: return "unknown error";
  }
}

}  // namespace

Decoded decode_webp(const uint8_t* data, size_t size, const DecodeLimits& limits,
                    const std::string& name) {
  WebPBitstreamFeatures f;
  const VP8StatusCode st = WebPGetFeatures(data, size, &f);
  if (st != VP8_STATUS_OK) throw Error(name + ": invalid or corrupt WebP: " + status_text(st));
  check_header(static_cast<uint64_t>(f.width), static_cast<uint64_t>(f.height), limits, name);
  if (f.has_animation) throw Error(name + ": animated WebP is not supported");

  Decoded d;
  Image& img = d.image;
  img.width = f.width;
  img.height = f.height;
  img.rgb.resize(static_cast<size_t>(f.width) * f.height * 3);
  if (!WebPDecodeRGBInto(data, size, img.rgb.data(), img.rgb.size(), f.width * 3)) {
    // Distinguish truncation from other corruption for the message.
    WebPDecoderConfig cfg;
    const char* why = "cannot decode image data";
    if (WebPInitDecoderConfig(&cfg)) {
      cfg.output.colorspace = MODE_RGB;
      const VP8StatusCode s2 = WebPDecode(data, size, &cfg);
      if (s2 != VP8_STATUS_OK) why = status_text(s2);
      WebPFreeDecBuffer(&cfg.output);
    }
    throw Error(name + ": invalid or corrupt WebP: " + why);
  }
  d.exif = find_exif_chunk(data, size);
  return d;
}

}  // namespace omni::image::detail
