#pragma once
// Opening a video held in memory: the container is probed and checked against the allowed
// demuxers, the best video stream chosen and its header checked against the limits, before any
// decoder is opened for it. Shared by probe_video and decode_frames.
#include <cstddef>
#include <cstdint>
#include <string>

#include "video/ffmpeg_raii.h"
#include "video/video.h"

namespace omni::video::detail {

// The reader behind the custom AVIOContext: a view of the caller's buffer.
struct MemoryReader {
  const uint8_t* data = nullptr;
  size_t size = 0;
  size_t pos = 0;
};

struct OpenVideo {
  // Declared in this order so the format context is closed before its I/O context is freed.
  std::unique_ptr<MemoryReader> reader;
  AvioPtr io;
  InputPtr fmt;
  int stream_index = -1;
  AVStream* stream = nullptr;
  std::string codec;   // FFmpeg's short name
  double fps = 0;      // avg_frame_rate, else r_frame_rate
};

// Throws VideoError (empty, over max_encoded_bytes, unknown or disallowed container, no video
// stream, disallowed codec, header size over the limits, no usable frame rate).
OpenVideo open_video(const uint8_t* data, size_t size, const VideoLimits& limits, const std::string& name);

// Throws VideoError when a width x height frame (`what`: "frame header", "frame 12") breaks
// min_side or max_frame_pixels.
void check_frame_size(int64_t width, int64_t height, const VideoLimits& limits, const std::string& name,
                      const std::string& what);

// Throws image::DecodeInterrupted naming the video when `interrupted` says stop; an exception
// thrown by `interrupted` itself passes through.
void poll(const image::DecodeInterrupt& interrupted, const std::string& name);

// "a, b, c": the allowed lists in messages and FFmpeg whitelists.
std::string join(const std::vector<std::string>& items, const char* sep);

}  // namespace omni::video::detail
