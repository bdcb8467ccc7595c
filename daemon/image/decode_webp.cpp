// WebP through libwebp: the still image (lossy or lossless) decoded to RGB; alpha, if any, is
// dropped without compositing, as Pillow's convert("RGB") does. Animated files are refused.
//
// Decoded with libwebp's incremental decoder, handed the file a chunk more at a time so that
// the caller's interrupt is polled between chunks. libwebp decodes what each chunk completes
// (macroblock rows for lossy, pixel rows for lossless), so the pixels are those of a one-shot
// decode. A chunk that completes no row grows the next one: a lossless header (transforms,
// Huffman codes) is re-parsed from its start on every update until it is whole, and doubling
// keeps that re-parsing below twice the header's size.
#include <webp/decode.h>

#include <algorithm>
#include <cstring>
#include <memory>

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

struct IdecDeleter {
  void operator()(WebPIDecoder* d) const { WebPIDelete(d); }
};
using Idec = std::unique_ptr<WebPIDecoder, IdecDeleter>;

constexpr size_t kChunkBytes = 32 << 10;

int rows_done(WebPIDecoder* idec) {
  int last_y = 0;
  WebPIDecGetRGB(idec, &last_y, nullptr, nullptr, nullptr);
  return last_y;
}

[[noreturn]] void throw_corrupt(const std::string& name, VP8StatusCode st) {
  throw DecodeError(name + ": invalid or corrupt WebP: " + status_text(st));
}

// Decodes into img.rgb (sized by the caller), one chunk of input at a time.
void decode_chunks(const uint8_t* data, size_t size, Image& img, const std::string& name,
                   InterruptPoll& poll) {
  Idec idec(WebPINewRGB(MODE_RGB, img.rgb.data(), img.rgb.size(), img.width * 3));
  if (!idec) throw_corrupt(name, VP8_STATUS_OUT_OF_MEMORY);
  size_t fed = 0, chunk = kChunkBytes;
  int rows = 0;
  for (;;) {
    if (poll.stop()) poll.throw_stopped(name);
    fed += std::min(chunk, size - fed);
    // WebPIUpdate: the same buffer, longer each time; libwebp reads it in place, no copy.
    const VP8StatusCode st = WebPIUpdate(idec.get(), data, fed);
    if (st == VP8_STATUS_OK) return;
    if (st != VP8_STATUS_SUSPENDED) throw_corrupt(name, st);
    if (fed == size) throw_corrupt(name, VP8_STATUS_NOT_ENOUGH_DATA);
    const int now = rows_done(idec.get());
    chunk = now > rows ? kChunkBytes : chunk * 2;
    rows = now;
  }
}

}  // namespace

Decoded decode_webp(const uint8_t* data, size_t size, const DecodeLimits& limits,
                    const std::string& name, InterruptPoll& poll) {
  WebPBitstreamFeatures f;
  const VP8StatusCode st = WebPGetFeatures(data, size, &f);
  if (st != VP8_STATUS_OK) throw_corrupt(name, st);
  check_header(static_cast<uint64_t>(f.width), static_cast<uint64_t>(f.height), limits, name);
  if (f.has_animation) throw DecodeError(name + ": animated WebP is not supported");
  check_work(static_cast<uint64_t>(f.width) * static_cast<uint64_t>(f.height) * (f.has_alpha ? 4 : 3),
             limits, name);

  Decoded d;
  d.image.width = f.width;
  d.image.height = f.height;
  d.image.rgb.resize(static_cast<size_t>(f.width) * f.height * 3);
  decode_chunks(data, size, d.image, name, poll);
  d.exif = find_exif_chunk(data, size);
  return d;
}

}  // namespace omni::image::detail
