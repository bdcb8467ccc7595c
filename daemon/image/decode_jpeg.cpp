// JPEG through libjpeg(-turbo) with the settings Pillow's decoder uses (libjpeg defaults:
// ISLOW DCT, fancy upsampling). libjpeg's default error handler calls exit(); ours longjmps back
// to run_libjpeg() (whose frame holds only C data) and the caller throws. A premature end of
// file, which libjpeg only warns about (padding with grey), is an error as in Pillow.
#include <cstdio>  // jpeglib.h needs FILE
#include <jpeglib.h>
#include <jerror.h>

#include <csetjmp>
#include <cstring>

#include "image/decode_internal.h"
#include "util/error.h"

namespace omni::image::detail {
namespace {

struct JpegContext {
  jpeg_error_mgr pub;  // first member: libjpeg hands us a jpeg_error_mgr*
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX] = {0};
  bool truncated = false;
  bool limit_error = false;
  std::string limit_message;
  const DecodeLimits* limits = nullptr;
  const std::string* name = nullptr;
  int width = 0, height = 0, components = 0;
  bool cmyk = false, adobe = false;
  std::vector<uint8_t> pixels;
  std::vector<uint8_t> exif;
};

void on_error_exit(j_common_ptr cinfo) {
  auto* c = reinterpret_cast<JpegContext*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, c->message);
  longjmp(c->jump, 1);
}

void on_message(j_common_ptr cinfo, int level) {
  auto* c = reinterpret_cast<JpegContext*>(cinfo->err);
  if (level == -1 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
    c->truncated = true;
    (*cinfo->err->format_message)(cinfo, c->message);
    longjmp(c->jump, 1);
  }
  // Other warnings (corrupt entropy data etc.) are ignored, as Pillow does.
}

bool run_libjpeg(JpegContext* c, const uint8_t* data, size_t size) {
  jpeg_decompress_struct cinfo;
  cinfo.err = jpeg_std_error(&c->pub);
  c->pub.error_exit = on_error_exit;
  c->pub.emit_message = on_message;
  if (setjmp(c->jump)) {
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
  jpeg_read_header(&cinfo, TRUE);

  try {
    check_header(cinfo.image_width, cinfo.image_height, *c->limits, *c->name);
  } catch (const Error& e) {
    c->limit_error = true;
    c->limit_message = e.what();
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  for (jpeg_saved_marker_ptr m = cinfo.marker_list; m; m = m->next) {
    if (m->marker == JPEG_APP0 + 1 && m->data_length > 6 && std::memcmp(m->data, "Exif\0\0", 6) == 0) {
      c->exif.assign(m->data, m->data + m->data_length);
      break;
    }
  }

  switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE: cinfo.out_color_space = JCS_GRAYSCALE; break;
    case JCS_CMYK:
    case JCS_YCCK: cinfo.out_color_space = JCS_CMYK; c->cmyk = true; break;
    default: cinfo.out_color_space = JCS_RGB; break;
  }
  c->adobe = cinfo.saw_Adobe_marker;
  jpeg_start_decompress(&cinfo);
  c->width = static_cast<int>(cinfo.output_width);
  c->height = static_cast<int>(cinfo.output_height);
  c->components = cinfo.output_components;
  const size_t stride = static_cast<size_t>(c->width) * c->components;
  c->pixels.resize(stride * c->height);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = c->pixels.data() + stride * cinfo.output_scanline;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_destroy_decompress(&cinfo);  // no finish: bytes after the last scan do not matter
  return true;
}

// Pillow's MULDIV255 and cmyk2rgb (Convert.c).
inline uint8_t cmyk_channel(int v, int nk) {
  int tmp = v * nk + 128;
  int m = ((tmp >> 8) + tmp) >> 8;
  int r = nk - m;
  return static_cast<uint8_t>(r < 0 ? 0 : (r > 255 ? 255 : r));
}

}  // namespace

Decoded decode_jpeg(const uint8_t* data, size_t size, const DecodeLimits& limits,
                    const std::string& name) {
  JpegContext c;
  c.limits = &limits;
  c.name = &name;
  if (!run_libjpeg(&c, data, size)) {
    if (c.limit_error) throw Error(c.limit_message);
    if (c.truncated) throw Error(name + ": JPEG file is truncated (" + c.message + ")");
    throw Error(name + ": invalid or corrupt JPEG: " + c.message);
  }
  Decoded d;
  Image& img = d.image;
  img.width = c.width;
  img.height = c.height;
  const size_t n = static_cast<size_t>(c.width) * c.height;
  img.rgb.resize(n * 3);
  const uint8_t* s = c.pixels.data();
  uint8_t* o = img.rgb.data();
  if (c.components == 1) {
    for (size_t i = 0; i < n; ++i, o += 3) o[0] = o[1] = o[2] = s[i];
  } else if (c.cmyk) {
    // Pillow reads Adobe CMYK as "CMYK;I" (inverted), then converts CMYK -> RGB.
    for (size_t i = 0; i < n; ++i, s += 4, o += 3) {
      int v[4];
      for (int k = 0; k < 4; ++k) v[k] = c.adobe ? 255 - s[k] : s[k];
      const int nk = 255 - v[3];
      for (int k = 0; k < 3; ++k) o[k] = cmyk_channel(v[k], nk);
    }
  } else {
    std::memcpy(o, s, n * 3);
  }
  d.exif = std::move(c.exif);
  return d;
}

}  // namespace omni::image::detail
