// PNG through libpng, converted to RGB the way Pillow's PngImagePlugin + convert("RGB") does:
// palette expanded, gray replicated, alpha dropped without compositing, 1/2/4-bit gray scaled to
// 0..255, 16-bit colour reduced to its high byte, 16-bit gray ("I;16") clipped to 255.
//
// libpng reports errors by longjmp to the setjmp point; all libpng calls therefore live in
// run_libpng(), whose frame holds only plain C data, and C++ state is reached through a context
// pointer. The error text is turned into a DecodeError by the caller. Rows are read one at a
// time, every interlace pass over every row as png_read_image() does, polling the caller's
// interrupt before each.
#include <png.h>

#include <csetjmp>
#include <cstring>
#include <new>

#include "image/decode_internal.h"
#include "util/error.h"

namespace omni::image::detail {
namespace {

struct PngContext {
  const uint8_t* data = nullptr;
  size_t size = 0, pos = 0;
  const DecodeLimits* limits = nullptr;
  const std::string* name = nullptr;
  InterruptPoll* poll = nullptr;
  std::string error;          // set before every longjmp
  bool limit_error = false;   // error already formatted by check_header / check_work
  bool interrupted = false;   // the caller's interrupt stopped it
  bool image_done = false;    // errors after the pixels (trailing chunks) are ignored
  int width = 0, height = 0, channels = 0, bit_depth = 0;
  std::vector<uint8_t> pixels;  // decoded rows as libpng produced them
  std::vector<png_bytep> rows;  // here, not in run_libpng's frame: longjmp skips destructors
  std::vector<uint8_t> exif;
};

void on_error(png_structp png, png_const_charp msg) {
  auto* c = static_cast<PngContext*>(png_get_error_ptr(png));
  if (c->error.empty()) c->error = msg;
  png_longjmp(png, 1);
}

void on_warning(png_structp, png_const_charp) {}  // Pillow ignores warnings too

void on_read(png_structp png, png_bytep out, size_t n) {
  auto* c = static_cast<PngContext*>(png_get_io_ptr(png));
  if (n > c->size - c->pos) {
    c->error = "file is truncated";
    png_longjmp(png, 1);
  }
  std::memcpy(out, c->data + c->pos, n);
  c->pos += n;
}

// The limits once libpng knows the output layout; false with c->error set.
[[gnu::noinline]] bool allowed(PngContext* c, png_uint_32 w, png_uint_32 h) {
  try {
    check_header(w, h, *c->limits, *c->name);
    check_work(uint64_t{w} * h * static_cast<uint64_t>(c->channels), *c->limits, *c->name);
    return true;
  } catch (const DecodeError& e) {
    c->error = e.what();
    c->limit_error = true;
    return false;
  }
}

// The buffer libpng writes rows into; false when it cannot be had.
[[gnu::noinline]] bool allocate_rows(PngContext* c, size_t rowbytes) {
  try {
    c->pixels.resize(rowbytes * static_cast<size_t>(c->height));
    c->rows.resize(static_cast<size_t>(c->height));
  } catch (const std::bad_alloc&) {
    c->error = "out of memory for " + std::to_string(c->width) + "x" + std::to_string(c->height) + " pixels";
    return false;
  }
  for (size_t y = 0; y < c->rows.size(); ++y) c->rows[y] = c->pixels.data() + y * rowbytes;
  return true;
}

// png_read_image() with a poll before every row of every pass; false when interrupted.
[[gnu::noinline]] bool read_rows(png_structp png, PngContext* c, int passes) {
  for (int pass = 0; pass < passes; ++pass) {
    for (png_bytep row : c->rows) {
      if (c->poll->stop()) {
        c->interrupted = true;
        return false;
      }
      png_read_row(png, row, nullptr);
    }
  }
  return true;
}

// C++ work run_libpng() needs, kept out of its frame (not inlined): string and vector code
// there would hold locals that longjmp may clobber (GCC's -Wclobbered at -O1).
[[gnu::noinline]] bool out_of_memory(PngContext* c) {
  c->error = "out of memory";
  return false;
}

[[gnu::noinline]] void keep_exif(PngContext* c, png_bytep exif, png_uint_32 len) { c->exif.assign(exif, exif + len); }

bool run_libpng(PngContext* c) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, c, on_error, on_warning);
  if (!png) return out_of_memory(c);
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    return out_of_memory(c);
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return c->image_done;
  }
  png_set_read_fn(png, c, on_read);
  png_read_info(png, info);

  png_uint_32 w = 0, h = 0;
  int depth = 0, color = 0, interlace = 0;
  png_get_IHDR(png, info, &w, &h, &depth, &color, &interlace, nullptr, nullptr);
  const bool gray16 = depth == 16 && color == PNG_COLOR_TYPE_GRAY;
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (depth == 16 && !gray16) png_set_strip_16(png);  // keeps the high byte, as Pillow's ;16B
  const int passes = interlace != PNG_INTERLACE_NONE ? png_set_interlace_handling(png) : 1;
  png_read_update_info(png, info);

  c->width = static_cast<int>(w);
  c->height = static_cast<int>(h);
  c->channels = png_get_channels(png, info);
  c->bit_depth = png_get_bit_depth(png, info);
  if (!allowed(c, w, h) || !allocate_rows(c, png_get_rowbytes(png, info)) || !read_rows(png, c, passes)) {
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  c->image_done = true;

  png_read_end(png, info);  // eXIf may follow the image data
  png_bytep exif = nullptr;
  png_uint_32 exif_len = 0;
  if (png_get_eXIf_1(png, info, &exif_len, &exif) && exif && exif_len > 0)
    keep_exif(c, exif, exif_len);
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

// libpng allocates the declared length of an eXIf (or text) chunk before reading it, even
// when the file cannot hold it: 200 bytes declaring a 1.5 GB chunk cost a 1.5 GB allocation
// (found by fuzz_image_decode). Returns how much of the file libpng is shown: all of it, or
// the part before the first non-IDAT chunk that runs past the end. Such a chunk after image
// data only loses its trailing chunks, as libpng's truncation error there would (Pillow too);
// before any image data the file is refused as truncated, as libpng would once at the end.
// A chunk type for a message: its four letters, anything else as '?' (it comes from the input).
std::string chunk_type(const uint8_t* p) {
  std::string t(reinterpret_cast<const char*>(p), 4);
  for (char& ch : t)
    if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z'))) ch = '?';
  return t;
}

size_t readable_size(const uint8_t* data, size_t size, const std::string& name) {
  bool image_data = false;
  for (size_t pos = 8; size - pos >= 12;) {
    const uint64_t len = be32(data + pos);
    const bool idat = std::memcmp(data + pos + 4, "IDAT", 4) == 0;
    if (len > size - pos - 12) {
      if (idat) return size;  // read piecewise by libpng, never allocated whole
      if (image_data) return pos;
      throw DecodeError(name + ": invalid or corrupt PNG: file is truncated (its " +
                        chunk_type(data + pos + 4) + " chunk declares " +
                        std::to_string(len) + " bytes, " + std::to_string(size - pos - 12) + " are left)");
    }
    image_data = image_data || idat;
    pos += 12 + len;
  }
  return size;
}

}  // namespace

Decoded decode_png(const uint8_t* data, size_t size, const DecodeLimits& limits,
                   const std::string& name, InterruptPoll& poll) {
  // Read the IHDR size ourselves first: a bomb is refused even if the rest of the file is junk.
  if (size < 33) throw DecodeError(name + ": PNG file is truncated (" + std::to_string(size) + " bytes)");
  if (std::memcmp(data + 12, "IHDR", 4) == 0) check_header(be32(data + 16), be32(data + 20), limits, name);

  PngContext c;
  c.data = data;
  c.size = readable_size(data, size, name);
  c.limits = &limits;
  c.name = &name;
  c.poll = &poll;
  if (!run_libpng(&c)) {
    if (c.interrupted) poll.throw_stopped(name);
    if (c.limit_error) throw DecodeError(c.error);
    throw DecodeError(name + ": invalid or corrupt PNG: " + c.error);
  }

  Decoded d;
  Image& img = d.image;
  img.width = c.width;
  img.height = c.height;
  img.rgb.resize(static_cast<size_t>(c.width) * c.height * 3);
  const size_t n = static_cast<size_t>(c.width) * c.height;
  const uint8_t* s = c.pixels.data();
  uint8_t* o = img.rgb.data();
  if (c.bit_depth == 16) {  // only 16-bit gray gets here: Pillow "I;16" -> RGB clips at 255
    for (size_t i = 0; i < n; ++i, s += 2 * c.channels, o += 3)
      o[0] = o[1] = o[2] = s[0] != 0 ? 255 : s[1];
  } else {
    for (size_t i = 0; i < n; ++i, s += c.channels, o += 3) {
      if (c.channels <= 2) {
        o[0] = o[1] = o[2] = s[0];
      } else {
        o[0] = s[0];
        o[1] = s[1];
        o[2] = s[2];
      }
    }
  }
  d.exif = std::move(c.exif);
  return d;
}

}  // namespace omni::image::detail
