#pragma once
// Per-format decoders behind decode_image(). Each one calls check_header() with the
// dimensions from the file header before allocating pixel memory, polls the caller's
// interrupt while it works, and returns the raw EXIF (TIFF) payload when the file carries
// one, for the orientation step.
#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include "image/decode.h"

namespace omni::image::detail {

struct Decoded {
  Image image;
  std::vector<uint8_t> exif;  // TIFF structure, possibly prefixed by "Exif\0\0"; empty if none
};

// The caller's DecodeInterrupt as the decoders call it: from inside libjpeg's and libpng's
// C callbacks, where no exception may pass (it would unwind through C frames that then
// never free their state). One thrown by the callback is kept, decoding stops, and
// throw_stopped() rethrows it once the decoder is cleaned up.
class InterruptPoll {
 public:
  explicit InterruptPoll(const DecodeInterrupt& fn) : fn_(fn) {}
  bool stop() noexcept;  // true: stop decoding now
  [[noreturn]] void throw_stopped(const std::string& name) const;

 private:
  const DecodeInterrupt& fn_;
  std::exception_ptr error_;
};

// Throws DecodeError("<name>: ...") when the header dimensions break the limits.
void check_header(uint64_t width, uint64_t height, const DecodeLimits& limits,
                  const std::string& name);
// Throws DecodeError when decoding `samples` (see DecodeLimits::max_decode_work) is too much.
void check_work(uint64_t samples, const DecodeLimits& limits, const std::string& name);

Decoded decode_png(const uint8_t* data, size_t size, const DecodeLimits& limits,
                   const std::string& name, InterruptPoll& poll);
Decoded decode_jpeg(const uint8_t* data, size_t size, const DecodeLimits& limits,
                    const std::string& name, InterruptPoll& poll);
Decoded decode_webp(const uint8_t* data, size_t size, const DecodeLimits& limits,
                    const std::string& name, InterruptPoll& poll);

// EXIF Orientation tag (1..8) from a TIFF payload (with or without the "Exif\0\0" prefix);
// 1 when absent or unreadable: a broken EXIF block never fails the decode.
int exif_orientation(const uint8_t* data, size_t size);
// Pillow ImageOps.exif_transpose for orientation 1..8.
Image apply_orientation(const Image& img, int orientation);

}  // namespace omni::image::detail
