// Entry point of decoding: input size limits, format sniffing, EXIF orientation, the shared
// limit checks and the interrupt poll. Format-specific work lives in decode_{png,jpeg,webp}.cpp.
#include <cstring>
#include <fstream>

#include "image/decode.h"
#include "image/decode_internal.h"
#include "util/error.h"

namespace omni::image {
namespace detail {

bool InterruptPoll::stop() noexcept {
  if (error_) return true;
  if (!fn_) return false;
  try {
    return fn_();
  } catch (...) {
    error_ = std::current_exception();
    return true;
  }
}

void InterruptPoll::throw_stopped(const std::string& name) const {
  if (error_) std::rethrow_exception(error_);
  throw DecodeInterrupted(name + ": decoding stopped by the caller (cancelled, past its deadline or shutting down)");
}

void check_header(uint64_t width, uint64_t height, const DecodeLimits& limits,
                  const std::string& name) {
  const std::string dims = std::to_string(width) + "x" + std::to_string(height);
  if (width == 0 || height == 0) throw DecodeError(name + ": image header declares an empty " + dims + " picture");
  // Checked before any pixel buffer exists: a tiny file declaring a huge picture is refused here.
  if (width > limits.max_pixels / height)
    throw DecodeError(name + ": image is " + dims + " = " + std::to_string(width * height) +
                " pixels, above the limit of " + std::to_string(limits.max_pixels) +
                " pixels (decompression bomb?)");
  const uint64_t min_side = width < height ? width : height;
  if (limits.min_side > 0 && min_side < static_cast<uint64_t>(limits.min_side))
    throw DecodeError(name + ": image is " + dims + " pixels; its smaller side " +
                std::to_string(min_side) + " is below the minimum of " +
                std::to_string(limits.min_side));
}

void check_work(uint64_t samples, const DecodeLimits& limits, const std::string& name) {
  if (samples > limits.max_decode_work)
    throw DecodeError(name + ": decoding it takes " + std::to_string(samples) +
                      " samples of work, above the limit of " + std::to_string(limits.max_decode_work) +
                      " (max_decode_work)");
}

}  // namespace detail

namespace {

bool starts_with(const uint8_t* d, size_t n, const char* magic, size_t len) {
  return n >= len && std::memcmp(d, magic, len) == 0;
}

}  // namespace

Image decode_image(const uint8_t* data, size_t size, const DecodeLimits& limits,
                   const std::string& name, const DecodeInterrupt& interrupted) {
  detail::InterruptPoll poll(interrupted);
  if (poll.stop()) poll.throw_stopped(name);  // a request cancelled while it waited does no work
  if (size == 0 || data == nullptr) throw DecodeError(name + ": empty input (0 bytes), not an image");
  if (size > limits.max_encoded_bytes)
    throw DecodeError(name + ": encoded image is " + std::to_string(size) + " bytes, above the limit of " +
                std::to_string(limits.max_encoded_bytes) + " bytes");

  detail::Decoded d;
  if (starts_with(data, size, "\x89PNG\r\n\x1a\n", 8)) {
    d = detail::decode_png(data, size, limits, name, poll);
  } else if (starts_with(data, size, "\xFF\xD8\xFF", 3)) {
    d = detail::decode_jpeg(data, size, limits, name, poll);
  } else if (size >= 12 && starts_with(data, size, "RIFF", 4) && std::memcmp(data + 8, "WEBP", 4) == 0) {
    d = detail::decode_webp(data, size, limits, name, poll);
  } else if (starts_with(data, size, "GIF8", 4) || starts_with(data, size, "BM", 2) ||
             starts_with(data, size, "II*\0", 4) || starts_with(data, size, "MM\0*", 4)) {
    throw DecodeError(name + ": unsupported image format (GIF, BMP or TIFF); supported: JPEG, PNG, WebP");
  } else {
    throw DecodeError(name + ": unknown image format (not JPEG, PNG or WebP)");
  }

  if (limits.apply_exif_orientation && !d.exif.empty()) {
    const int orientation = detail::exif_orientation(d.exif.data(), d.exif.size());
    if (orientation != 1) d.image = detail::apply_orientation(d.image, orientation);
  }
  return std::move(d.image);
}

Image load_image_file(const std::string& path, const DecodeLimits& limits,
                      const DecodeInterrupt& interrupted) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw DecodeError(path + ": cannot open image file");
  const std::streamoff n = f.tellg();
  if (n < 0) throw DecodeError(path + ": cannot read image file");
  if (static_cast<uint64_t>(n) > limits.max_encoded_bytes)
    throw DecodeError(path + ": encoded image is " + std::to_string(n) + " bytes, above the limit of " +
                std::to_string(limits.max_encoded_bytes) + " bytes");
  std::vector<uint8_t> buf(static_cast<size_t>(n));
  f.seekg(0);
  if (n > 0 && !f.read(reinterpret_cast<char*>(buf.data()), n))
    throw DecodeError(path + ": read error");
  return decode_image(buf.data(), buf.size(), limits, path, interrupted);
}

}  // namespace omni::image
