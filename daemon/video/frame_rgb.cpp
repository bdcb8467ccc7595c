// swscale conversion of one decoded frame to RGB24. swscale writes into an AVFrame buffer of its
// own (aligned rows with padding, where its SIMD stores may run past a row's end), then the rows
// are copied into the tightly packed image::Image.
#include "video/frame_rgb.h"

#include <cstring>

extern "C" {
#include <libavutil/pixdesc.h>
}

#include "video/video.h"

namespace omni::video::detail {

image::Image frame_to_rgb(const AVFrame* frame, SwsPtr& sws, const std::string& what) {
  const auto src_format = static_cast<AVPixelFormat>(frame->format);
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(src_format);
  if (!desc) throw VideoError(what + ": the decoder gave frames of an unknown pixel format");
  const bool rgb_like = (desc->flags & AV_PIX_FMT_FLAG_RGB) && !(desc->flags & AV_PIX_FMT_FLAG_PAL);
  // Same size in and out: an RGB source takes swscale's unscaled copy/shuffle (exact); SWS_POINT
  // keeps any scaler it might set up from filtering.
  const int flags = rgb_like ? SWS_POINT : (SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT);
  const int w = frame->width, h = frame->height;
  SwsContext* ctx =
      sws_getCachedContext(sws.release(), w, h, src_format, w, h, AV_PIX_FMT_RGB24, flags, nullptr, nullptr, nullptr);
  sws.reset(ctx);
  if (!ctx)
    throw VideoError(what + ": cannot convert " + std::string(desc->name) + " frames of " + std::to_string(w) + "x" +
                     std::to_string(h) + " to RGB");
  if (!(desc->flags & (AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL))) {  // YUV or gray
    // The frame's own matrix (BT.709 for HD, ...) and range (full for JPEG-style sources);
    // swscale otherwise assumes BT.601 limited range.
    int* inv_table = nullptr;
    int* table = nullptr;
    int src_range = 0, dst_range = 0, brightness = 0, contrast = 0, saturation = 0;
    if (sws_getColorspaceDetails(ctx, &inv_table, &src_range, &table, &dst_range, &brightness, &contrast,
                                 &saturation) >= 0) {
      const int cs = frame->colorspace == AVCOL_SPC_UNSPECIFIED ? SWS_CS_DEFAULT : frame->colorspace;
      const int full = frame->color_range == AVCOL_RANGE_JPEG ? 1 : src_range;
      sws_setColorspaceDetails(ctx, sws_getCoefficients(cs), full, table, dst_range, brightness, contrast, saturation);
    }
  }

  FramePtr out(av_frame_alloc());
  if (!out) throw VideoError(what + ": out of memory for an RGB frame");
  out->format = AV_PIX_FMT_RGB24;
  out->width = w;
  out->height = h;
  if (av_frame_get_buffer(out.get(), 0) < 0) throw VideoError(what + ": out of memory for an RGB frame");
  const int rows = sws_scale(ctx, frame->data, frame->linesize, 0, h, out->data, out->linesize);
  if (rows != h) throw VideoError(what + ": converting the frame to RGB failed");

  image::Image img;
  img.width = w;
  img.height = h;
  const size_t row = static_cast<size_t>(w) * 3;
  img.rgb.resize(row * static_cast<size_t>(h));
  for (int y = 0; y < h; ++y)
    std::memcpy(img.rgb.data() + row * static_cast<size_t>(y), out->data[0] + static_cast<ptrdiff_t>(y) * out->linesize[0], row);
  return img;
}

}  // namespace omni::video::detail
