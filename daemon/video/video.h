#pragma once
// Encoded videos (MP4, Matroska/WebM, AVI, ... as FFmpeg's libavformat demuxes them) read from
// memory and decoded with libavcodec into the 8-bit RGB frames the picture path takes, the way
// the released MiniCPM-V code reads them with decord (VideoReader: frame count = the video
// stream's packets, fps = its average frame rate, frames converted to RGB24).
// Every limit is checked before the work it bounds; a bad, truncated or hostile file throws
// VideoError naming the video and what is wrong; decoding polls an interrupt so a cancel,
// deadline or shutdown stops it between packets.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "image/decode.h"
#include "image/image.h"
#include "util/error.h"

namespace omni::video {

struct VideoLimits {
  size_t max_encoded_bytes = 256ull << 20;   // the encoded file
  double max_duration_s = 3 * 3600.0;        // frame_count / fps
  int64_t max_frames = 200'000;              // frames in the stream (packets walked by probe)
  uint64_t max_frame_pixels = 40'000'000;    // width*height of a frame, checked from the header
  int min_side = 8;
  // Frames decoded to reach the sampled ones (each costs a full decode even when it is not kept):
  // bounds the work of one request. 200,000 is about 1.9 h at 30 fps.
  int64_t max_frames_decoded = 200'000;
  // Codecs allowed, by FFmpeg's short names (AVCodecDescriptor::name). Anything else is refused
  // before a decoder is opened (attack surface: FFmpeg has many rarely used decoders).
  std::vector<std::string> codecs = {"h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "mpeg2video",
                                     "mjpeg", "ffv1", "rawvideo", "png", "utvideo"};
  // Containers allowed, by the names of FFmpeg's demuxers (one name of a demuxer that has
  // several, e.g. "mov,mp4,m4a,3gp,3g2,mj2", is enough). The same reason: the rest are refused
  // after probing, before the demuxer reads the header. HLS, concat and other demuxers that open
  // further files are never allowed (open_video refuses any nested open as well).
  std::vector<std::string> formats = {"mov", "mp4", "matroska", "webm", "avi", "mpegts", "mpeg", "flv",
                                      "ivf", "h264", "hevc", "m4v", "mpegvideo", "ogg", "nut"};
};

// The video itself is bad or over a limit. Message starts with the video's name.
class VideoError : public omni::Error {
 public:
  explicit VideoError(const std::string& what) : omni::Error(what, ipc::ErrorCode::bad_image) {}
};

struct VideoInfo {
  int64_t frame_count = 0;   // decord's len(vr)
  double fps = 0;            // decord's get_avg_fps()
  double duration_s = 0;     // frame_count / fps
  int width = 0, height = 0;
  std::string codec;         // FFmpeg's short name
};

struct Frame {
  int64_t index = 0;         // position in the stream, 0-based (decord's frame index)
  image::Image rgb;
};

// Demuxes the whole stream (no decoding) and reads the header: frame count, fps, size, codec.
// Throws VideoError (bad input, over a limit) or image::DecodeInterrupted.
VideoInfo probe_video(const uint8_t* data, size_t size, const VideoLimits& limits, const std::string& name,
                      const image::DecodeInterrupt& interrupted = {});

// Decodes the frames at `indices` (non-decreasing, each < info.frame_count; a repeated index
// gives the same frame again, as the 4.5 sampling of a short clip asks) in one pass and hands
// each to `on_frame` as soon as it is converted to RGB24, in that order, so a caller keeps only
// what it derives from a frame (a long clip's full-size frames never pile up). An index the
// stream does not reach (a truncated file) throws VideoError naming it and how many frames the
// stream held.
void decode_frames(const uint8_t* data, size_t size, const std::vector<int64_t>& indices, const VideoLimits& limits,
                   const std::string& name, const std::function<void(Frame&&)>& on_frame,
                   const image::DecodeInterrupt& interrupted = {});
// The same, collected.
std::vector<Frame> decode_frames(const uint8_t* data, size_t size, const std::vector<int64_t>& indices,
                                 const VideoLimits& limits, const std::string& name,
                                 const image::DecodeInterrupt& interrupted = {});

}  // namespace omni::video
