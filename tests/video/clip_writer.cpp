// Muxing into a std::vector through a custom, seekable AVIOContext (the Matroska and AVI muxers
// seek back to write sizes and indexes).
#include "clip_writer.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "video/ffmpeg_raii.h"

extern "C" {
#include <libavutil/pixdesc.h>
}

namespace omni::video::test {
namespace {

using namespace omni::video::detail;

struct MemoryWriter {
  std::vector<uint8_t> data;
  size_t pos = 0;
};

// FFmpeg 5.1 declares the buffer non-const.
int write_memory(void* opaque, uint8_t* buf, int n) {
  auto* w = static_cast<MemoryWriter*>(opaque);
  if (w->pos + static_cast<size_t>(n) > w->data.size()) w->data.resize(w->pos + static_cast<size_t>(n));
  std::memcpy(w->data.data() + w->pos, buf, static_cast<size_t>(n));
  w->pos += static_cast<size_t>(n);
  return n;
}

int64_t seek_memory(void* opaque, int64_t offset, int whence) {
  auto* w = static_cast<MemoryWriter*>(opaque);
  whence &= ~AVSEEK_FORCE;
  if (whence == AVSEEK_SIZE) return static_cast<int64_t>(w->data.size());
  const int64_t base = whence == SEEK_CUR ? static_cast<int64_t>(w->pos)
                       : whence == SEEK_END ? static_cast<int64_t>(w->data.size())
                                            : 0;
  if (base + offset < 0) return AVERROR(EINVAL);
  w->pos = static_cast<size_t>(base + offset);
  return base + offset;
}

void check(int r, const std::string& what) {
  if (r < 0) throw std::runtime_error("clip_writer: " + what + ": " + av_error_text(r));
}

void write_packets(AVCodecContext* enc, AVFormatContext* oc, AVStream* st, AVPacket* pkt) {
  for (;;) {
    const int r = avcodec_receive_packet(enc, pkt);
    if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return;
    check(r, "encoding");
    av_packet_rescale_ts(pkt, enc->time_base, st->time_base);
    pkt->stream_index = st->index;
    check(av_interleaved_write_frame(oc, pkt), "muxing");
  }
}

}  // namespace

image::Image pattern_frame(int index, int width, int height) {
  image::Image img;
  img.width = width;
  img.height = height;
  img.rgb.resize(static_cast<size_t>(width) * height * 3);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      uint8_t* p = &img.rgb[(static_cast<size_t>(y) * width + x) * 3];
      p[0] = static_cast<uint8_t>(x * 7 + index * 13);
      p[1] = static_cast<uint8_t>(y * 5 + index * 31 + x);
      p[2] = static_cast<uint8_t>((x ^ y) + index * 57);
    }
  return img;
}

std::vector<uint8_t> write_clip(const ClipSpec& spec, const FrameSource& frame_at) {
  MemoryWriter out;
  AVFormatContext* raw = nullptr;
  check(avformat_alloc_output_context2(&raw, nullptr, spec.container.c_str(), nullptr), "muxer " + spec.container);
  OutputPtr oc(raw);
  auto* buffer = static_cast<unsigned char*>(av_malloc(1 << 16));
  AvioPtr io(avio_alloc_context(buffer, 1 << 16, 1, &out, nullptr, write_memory, seek_memory));
  oc->pb = io.get();

  const AVCodec* codec = avcodec_find_encoder_by_name(spec.codec.c_str());
  if (!codec) throw std::runtime_error("clip_writer: no encoder " + spec.codec);
  CodecPtr enc(avcodec_alloc_context3(codec));
  const AVPixelFormat pix = av_get_pix_fmt(spec.pix_fmt.c_str());
  enc->width = spec.width;
  enc->height = spec.height;
  enc->pix_fmt = pix;
  enc->time_base = AVRational{spec.fps_den, spec.fps_num};
  enc->framerate = AVRational{spec.fps_num, spec.fps_den};
  enc->max_b_frames = spec.max_b_frames;
  enc->gop_size = 12;
  enc->thread_count = 1;
  if (oc->oformat->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  check(avcodec_open2(enc.get(), codec, nullptr), "opening encoder " + spec.codec);
  AVStream* st = avformat_new_stream(oc.get(), nullptr);
  check(avcodec_parameters_from_context(st->codecpar, enc.get()), "stream parameters");
  st->time_base = enc->time_base;
  st->avg_frame_rate = enc->framerate;
  check(avformat_write_header(oc.get(), nullptr), "writing the header");

  FramePtr frame(av_frame_alloc());
  PacketPtr pkt(av_packet_alloc());
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(pix);
  const int flags = (desc->flags & AV_PIX_FMT_FLAG_RGB) ? SWS_POINT : SWS_BICUBIC | SWS_ACCURATE_RND;
  SwsPtr sws(sws_getContext(spec.width, spec.height, AV_PIX_FMT_RGB24, spec.width, spec.height, pix, flags, nullptr,
                            nullptr, nullptr));
  for (int i = 0; i < spec.frames; ++i) {
    const image::Image img = frame_at(i, spec.width, spec.height);
    frame->format = pix;
    frame->width = spec.width;
    frame->height = spec.height;
    check(av_frame_get_buffer(frame.get(), 0), "frame buffer");
    const uint8_t* src[1] = {img.rgb.data()};
    const int src_stride[1] = {spec.width * 3};
    sws_scale(sws.get(), src, src_stride, 0, spec.height, frame->data, frame->linesize);
    frame->pts = i;
    check(avcodec_send_frame(enc.get(), frame.get()), "encoding frame " + std::to_string(i));
    av_frame_unref(frame.get());
    write_packets(enc.get(), oc.get(), st, pkt.get());
  }
  check(avcodec_send_frame(enc.get(), nullptr), "flushing the encoder");
  write_packets(enc.get(), oc.get(), st, pkt.get());
  check(av_write_trailer(oc.get()), "writing the trailer");
  avio_flush(io.get());
  oc.reset();  // before its I/O context
  io.reset();
  return std::move(out.data);
}

void patch_once(std::vector<uint8_t>& file, const std::vector<uint8_t>& from, const std::vector<uint8_t>& to) {
  if (from.size() != to.size()) throw std::logic_error("patch_once: lengths differ");
  auto at = std::search(file.begin(), file.end(), from.begin(), from.end());
  if (at == file.end()) throw std::runtime_error("patch_once: pattern not found");
  if (std::search(at + 1, file.end(), from.begin(), from.end()) != file.end())
    throw std::runtime_error("patch_once: pattern found more than once");
  std::copy(to.begin(), to.end(), at);
}

}  // namespace omni::video::test
