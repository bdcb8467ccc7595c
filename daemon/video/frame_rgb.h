#pragma once
// A decoded AVFrame as the picture path's 8-bit RGB image.
#include <string>

#include "image/image.h"
#include "video/ffmpeg_raii.h"

namespace omni::video::detail {

// Converts with swscale at the frame's own size. RGB-like frames (gbrp, bgr0, rgb24, ...) are
// copied exactly (no scaling, no dithering); YUV ones with SWS_BICUBIC | SWS_ACCURATE_RND |
// SWS_FULL_CHR_H_INT, honouring the frame's range and matrix. `sws` is reused across frames of
// one stream and rebuilt when the size or format changes. Throws VideoError naming `what`.
image::Image frame_to_rgb(const AVFrame* frame, SwsPtr& sws, const std::string& what);

}  // namespace omni::video::detail
