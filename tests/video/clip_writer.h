#pragma once
// Test clips encoded in memory with libavformat/libavcodec from frames whose pixels are known,
// so that decoding can be checked bit for bit (FFV1 with an RGB pixel format is lossless) and
// bad files can be made from good ones.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "image/image.h"

namespace omni::video::test {

struct ClipSpec {
  std::string container = "matroska";  // FFmpeg muxer name
  std::string codec = "ffv1";          // FFmpeg encoder name
  std::string pix_fmt = "bgr0";        // the encoder's input format (frames are converted to it)
  int width = 32, height = 24;
  int frames = 12;
  int fps_num = 30, fps_den = 1;       // frame rate as a rational, e.g. 30000/1001
  int max_b_frames = 0;                // > 0: B-frames, decoded out of order
};

// Frame i of the default clips: every pixel a different function of (x, y, i).
image::Image pattern_frame(int index, int width, int height);

using FrameSource = std::function<image::Image(int index, int width, int height)>;

// The encoded file. Throws std::runtime_error when FFmpeg refuses the spec.
std::vector<uint8_t> write_clip(const ClipSpec& spec, const FrameSource& frame = pattern_frame);

// Replaces the one occurrence of `from` in `file` by `to` (same length); throws if there is not
// exactly one.
void patch_once(std::vector<uint8_t>& file, const std::vector<uint8_t>& from, const std::vector<uint8_t>& to);

}  // namespace omni::video::test
