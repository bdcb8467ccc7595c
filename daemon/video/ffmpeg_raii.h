#pragma once
// Owning handles for FFmpeg's C objects: each is freed by its own function on every path,
// including the exceptions that carry a refusal out of the demuxing and decoding loops.
extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/dict.h>
#include <libavutil/frame.h>
#include <libswscale/swscale.h>
}

#include <memory>
#include <string>

namespace omni::video::detail {

struct AvioFree {
  // The I/O buffer may have been replaced by FFmpeg while probing: free the current one.
  void operator()(AVIOContext* io) const {
    av_freep(&io->buffer);
    avio_context_free(&io);
  }
};
struct InputFree {
  void operator()(AVFormatContext* f) const { avformat_close_input(&f); }  // leaves a custom pb alone
};
struct OutputFree {
  void operator()(AVFormatContext* f) const { avformat_free_context(f); }
};
struct CodecFree {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct FrameFree {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct PacketFree {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct SwsFree {
  void operator()(SwsContext* s) const { sws_freeContext(s); }
};
struct DictFree {
  void operator()(AVDictionary* d) const { av_dict_free(&d); }
};

using AvioPtr = std::unique_ptr<AVIOContext, AvioFree>;
using InputPtr = std::unique_ptr<AVFormatContext, InputFree>;
using OutputPtr = std::unique_ptr<AVFormatContext, OutputFree>;
using CodecPtr = std::unique_ptr<AVCodecContext, CodecFree>;
using FramePtr = std::unique_ptr<AVFrame, FrameFree>;
using PacketPtr = std::unique_ptr<AVPacket, PacketFree>;
using SwsPtr = std::unique_ptr<SwsContext, SwsFree>;

// An AVDictionary** argument that is freed afterwards, whatever FFmpeg left in it.
class Dict {
 public:
  Dict() = default;
  Dict(const Dict&) = delete;
  Dict& operator=(const Dict&) = delete;
  ~Dict() { av_dict_free(&d_); }
  void set(const char* key, const std::string& value) { av_dict_set(&d_, key, value.c_str(), 0); }
  AVDictionary** get() { return &d_; }

 private:
  AVDictionary* d_ = nullptr;
};

// av_strerror's text for an FFmpeg error code.
std::string av_error_text(int code);

}  // namespace omni::video::detail
