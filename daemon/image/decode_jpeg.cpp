// JPEG through libjpeg(-turbo) with the settings Pillow's decoder uses (libjpeg defaults:
// ISLOW DCT, fancy upsampling). libjpeg's default error handler calls exit(); ours longjmps back
// to run_libjpeg() (whose frame holds only C data) and the caller throws. A premature end of
// file, which libjpeg only warns about (padding with grey), is an error as in Pillow.
//
// Work is bounded through libjpeg's progress monitor. In normal (not buffered-image) mode
// jpeg_start_decompress() absorbs every scan of a multi-scan file and calls the monitor before
// each iMCU row and after each new SOS; jpeg_read_scanlines() calls it once per call (we read
// one row per call). The monitor charges each new scan (input_scan_number) its coefficient
// blocks before libjpeg walks them, refuses the file past max_jpeg_scans or max_decode_work,
// and polls the caller's interrupt; stopping is a longjmp to the same point as an error.
// (Buffered-image mode would need its own checks: jpeg_consume_input() never calls the monitor.)
#include <cstdio>  // jpeglib.h needs FILE
#include <jpeglib.h>
#include <jerror.h>

#include <csetjmp>
#include <cstring>
#include <new>

#include "image/decode_internal.h"
#include "util/error.h"

namespace omni::image::detail {
namespace {

enum class Stop { none, corrupt, truncated, refused, interrupted };

struct JpegContext {
  jpeg_error_mgr err;
  jpeg_progress_mgr progress;
  jmp_buf jump;
  Stop stop = Stop::none;
  char message[JMSG_LENGTH_MAX] = {0};  // libjpeg's text, for corrupt and truncated
  std::string refusal;                  // a whole DecodeError message, for refused
  const DecodeLimits* limits = nullptr;
  const std::string* name = nullptr;
  InterruptPoll* poll = nullptr;
  int scans_charged = 0;  // scans whose blocks are counted in work
  uint64_t work = 0;      // samples, as DecodeLimits::max_decode_work counts them
  int width = 0, height = 0, components = 0;
  bool cmyk = false, adobe = false;
  std::vector<uint8_t> pixels;
  std::vector<uint8_t> exif;
};

JpegContext* context_of(j_common_ptr cinfo) { return static_cast<JpegContext*>(cinfo->client_data); }

// Back to run_libjpeg()'s setjmp. Callers hold no C++ object with a destructor in their frame.
[[noreturn]] void stop_decoding(j_common_ptr cinfo, Stop why) {
  JpegContext* c = context_of(cinfo);
  c->stop = why;
  longjmp(c->jump, 1);
}

void on_error_exit(j_common_ptr cinfo) {
  (*cinfo->err->format_message)(cinfo, context_of(cinfo)->message);
  stop_decoding(cinfo, Stop::corrupt);
}

void on_message(j_common_ptr cinfo, int level) {
  if (level == -1 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
    (*cinfo->err->format_message)(cinfo, context_of(cinfo)->message);
    stop_decoding(cinfo, Stop::truncated);
  }
  // Other warnings (corrupt entropy data etc.) are ignored, as Pillow does.
}

std::string dims_of(j_decompress_ptr cinfo) {
  return std::to_string(cinfo->image_width) + "x" + std::to_string(cinfo->image_height);
}

// Formats the refusal of a scan over the limits into c->refusal; false when the scan is allowed.
// Charged before libjpeg walks the scan, so a refused scan costs nothing.
bool refuse_scan(j_decompress_ptr cinfo, JpegContext* c) {
  const int scan = cinfo->input_scan_number;
  const DecodeLimits& lim = *c->limits;
  if (scan > lim.max_jpeg_scans) {
    c->refusal = *c->name + ": JPEG has more than " + std::to_string(lim.max_jpeg_scans) +
                 " scans, the limit (max_jpeg_scans; a progressive JPEG has about 10)";
    return true;
  }
  // Every block of the scan is walked even when the scan codes nothing. A scan is a single
  // component (MCU = 1 block) or an interleaved MCU grid; per_scan_setup() has set both.
  const uint64_t samples = uint64_t{cinfo->MCUs_per_row} * cinfo->MCU_rows_in_scan *
                           static_cast<uint64_t>(cinfo->blocks_in_MCU) * DCTSIZE2;
  c->work += samples * static_cast<uint64_t>(scan - c->scans_charged);
  c->scans_charged = scan;
  if (c->work > lim.max_decode_work) {
    c->refusal = *c->name + ": JPEG needs more than " + std::to_string(lim.max_decode_work) +
                 " samples of decoding work (max_decode_work): " + std::to_string(c->work) +
                 " by scan " + std::to_string(scan) + " of its " + dims_of(cinfo) + " pixels";
    return true;
  }
  return false;
}

void on_progress(j_common_ptr common) {
  JpegContext* c = context_of(common);
  if (c->poll->stop()) stop_decoding(common, Stop::interrupted);
  auto* cinfo = reinterpret_cast<j_decompress_ptr>(common);
  if (cinfo->input_scan_number > c->scans_charged && refuse_scan(cinfo, c))
    stop_decoding(common, Stop::refused);
}

// Header limits, before libjpeg allocates anything picture-sized; false with c->refusal set.
bool header_allowed(j_decompress_ptr cinfo, JpegContext* c) {
  try {
    check_header(cinfo->image_width, cinfo->image_height, *c->limits, *c->name);
    return true;
  } catch (const DecodeError& e) {
    c->refusal = e.what();
    return false;
  }
}

void save_exif(j_decompress_ptr cinfo, JpegContext* c) {
  for (jpeg_saved_marker_ptr m = cinfo->marker_list; m; m = m->next) {
    if (m->marker == JPEG_APP0 + 1 && m->data_length > 6 && std::memcmp(m->data, "Exif\0\0", 6) == 0) {
      c->exif.assign(m->data, m->data + m->data_length);
      return;
    }
  }
}

void choose_output_space(j_decompress_ptr cinfo, JpegContext* c) {
  switch (cinfo->jpeg_color_space) {
    case JCS_GRAYSCALE: cinfo->out_color_space = JCS_GRAYSCALE; break;
    case JCS_CMYK:
    case JCS_YCCK: cinfo->out_color_space = JCS_CMYK; c->cmyk = true; break;
    default: cinfo->out_color_space = JCS_RGB; break;
  }
  c->adobe = cinfo->saw_Adobe_marker;
}

// One row per jpeg_read_scanlines() call: the progress monitor then runs once per row.
void read_rows(j_decompress_ptr cinfo, JpegContext* c) {
  const size_t stride = static_cast<size_t>(c->width) * c->components;
  while (cinfo->output_scanline < cinfo->output_height) {
    JSAMPROW row = c->pixels.data() + stride * cinfo->output_scanline;
    jpeg_read_scanlines(cinfo, &row, 1);
  }
}

// False when the pixel buffer cannot be had; cinfo is then destroyed.
bool allocate_pixels(j_decompress_ptr cinfo, JpegContext* c) {
  c->width = static_cast<int>(cinfo->output_width);
  c->height = static_cast<int>(cinfo->output_height);
  c->components = cinfo->output_components;
  try {
    c->pixels.resize(static_cast<size_t>(c->width) * c->components * c->height);
    return true;
  } catch (const std::bad_alloc&) {
    std::snprintf(c->message, sizeof c->message, "out of memory for %dx%d pixels", c->width, c->height);
    c->stop = Stop::corrupt;
    return false;
  }
}

bool run_libjpeg(JpegContext* c, const uint8_t* data, size_t size) {
  jpeg_decompress_struct cinfo;
  cinfo.err = jpeg_std_error(&c->err);
  c->err.error_exit = on_error_exit;
  c->err.emit_message = on_message;
  cinfo.client_data = c;  // kept by jpeg_create_decompress
  if (setjmp(c->jump)) {
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
  jpeg_read_header(&cinfo, TRUE);
  if (!header_allowed(&cinfo, c)) {
    c->stop = Stop::refused;
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  // From here on, when scan 1's geometry is set up: the monitor charges it on its first call.
  c->progress.progress_monitor = on_progress;
  cinfo.progress = &c->progress;
  save_exif(&cinfo, c);
  choose_output_space(&cinfo, c);
  jpeg_start_decompress(&cinfo);  // a multi-scan file is read in full here
  if (!allocate_pixels(&cinfo, c)) {
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  read_rows(&cinfo, c);
  jpeg_destroy_decompress(&cinfo);  // no finish: bytes after the last scan do not matter
  return true;
}

[[noreturn]] void throw_failure(const JpegContext& c, const std::string& name, const InterruptPoll& poll) {
  switch (c.stop) {
    case Stop::interrupted: poll.throw_stopped(name);
    case Stop::refused: throw DecodeError(c.refusal);
    case Stop::truncated: throw DecodeError(name + ": JPEG file is truncated (" + c.message + ")");
    default: throw DecodeError(name + ": invalid or corrupt JPEG: " + c.message);
  }
}

// Pillow's MULDIV255 and cmyk2rgb (Convert.c).
inline uint8_t cmyk_channel(int v, int nk) {
  int tmp = v * nk + 128;
  int m = ((tmp >> 8) + tmp) >> 8;
  int r = nk - m;
  return static_cast<uint8_t>(r < 0 ? 0 : (r > 255 ? 255 : r));
}

Image to_rgb(const JpegContext& c) {
  Image img;
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
  return img;
}

}  // namespace

Decoded decode_jpeg(const uint8_t* data, size_t size, const DecodeLimits& limits,
                    const std::string& name, InterruptPoll& poll) {
  JpegContext c;
  c.limits = &limits;
  c.name = &name;
  c.poll = &poll;
  if (!run_libjpeg(&c, data, size)) throw_failure(c, name, poll);
  Decoded d;
  d.image = to_rgb(c);
  d.exif = std::move(c.exif);
  return d;
}

}  // namespace omni::image::detail
