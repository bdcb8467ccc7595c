// probe_video and decode_frames: the packet loop over an opened video (demux.cpp), decord's
// frame numbering (probe: one frame per packet of the video stream; decode: the n-th frame out of
// the decoder, which outputs in presentation order), the per-frame limits, the interrupt polled
// between packets.
#include <algorithm>
#include <climits>
#include <cstdio>

#include "video/demux.h"
#include "video/frame_rgb.h"
#include "video/video.h"

namespace omni::video {
namespace {

using detail::OpenVideo;

std::string fmt_double(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

void check_count(int64_t count, double fps, const VideoLimits& limits, const std::string& name) {
  if (count > limits.max_frames)
    throw VideoError(name + ": the video stream has more than " + std::to_string(limits.max_frames) +
                     " frames (max_frames)");
  const double duration = static_cast<double>(count) / fps;
  if (duration > limits.max_duration_s)
    throw VideoError(name + ": the video lasts at least " + fmt_double(duration) + " s (" + std::to_string(count) +
                     " frames at " + fmt_double(fps) + " fps), above the limit of " +
                     fmt_double(limits.max_duration_s) + " s");
}

// The next packet of the video stream into `pkt`; false at the end of the file.
bool next_packet(OpenVideo& v, AVPacket* pkt, int64_t packets, const image::DecodeInterrupt& interrupted,
                 const std::string& name) {
  for (;;) {
    detail::poll(interrupted, name);
    av_packet_unref(pkt);
    const int r = av_read_frame(v.fmt.get(), pkt);
    if (r == AVERROR_EOF) return false;
    if (r < 0)
      throw VideoError(name + ": truncated or corrupt video: reading the packet after frame " +
                       std::to_string(packets) + " failed: " + detail::av_error_text(r));
    if (pkt->stream_index == v.stream_index) return true;
  }
}

}  // namespace

VideoInfo probe_video(const uint8_t* data, size_t size, const VideoLimits& limits, const std::string& name,
                      const image::DecodeInterrupt& interrupted) {
  detail::poll(interrupted, name);  // a request cancelled while it waited does no work
  OpenVideo v = detail::open_video(data, size, limits, name);
  detail::PacketPtr pkt(av_packet_alloc());
  if (!pkt) throw VideoError(name + ": out of memory for a packet");
  int64_t count = 0;
  int64_t end_ts = AV_NOPTS_VALUE;   // where the last packet ends, in the stream's time base
  while (next_packet(v, pkt.get(), count, interrupted, name)) {
    ++count;
    check_count(count, v.fps, limits, name);  // stops an endless or absurd stream early
    const int64_t ts = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;
    if (ts != AV_NOPTS_VALUE && (end_ts == AV_NOPTS_VALUE || ts + pkt->duration > end_ts)) end_ts = ts + pkt->duration;
  }
  if (count == 0) throw VideoError(name + ": the video stream has no frames");
  // A container that states its duration up front (Matroska's, MP4's) and frames that stop well
  // short of it: the file was cut. The container's own duration counts only when the video is
  // its one stream (an audio track may run longer); 10 % and two frames of slack for rounding.
  double declared = 0;
  if (v.stream->duration > 0 && v.stream->duration != AV_NOPTS_VALUE)
    declared = static_cast<double>(v.stream->duration) * av_q2d(v.stream->time_base);
  else if (v.fmt->nb_streams == 1 && v.fmt->duration > 0 && v.fmt->duration != AV_NOPTS_VALUE)
    declared = static_cast<double>(v.fmt->duration) / AV_TIME_BASE;
  if (declared > 0 && end_ts != AV_NOPTS_VALUE) {
    const double start = v.stream->start_time != AV_NOPTS_VALUE ? static_cast<double>(v.stream->start_time) *
                                                                       av_q2d(v.stream->time_base)
                                                                 : 0.0;
    const double ends = static_cast<double>(end_ts) * av_q2d(v.stream->time_base) - start;
    if (ends < declared - std::max(0.1 * declared, 2.0 / v.fps))
      throw VideoError(name + ": truncated video: its header says " + fmt_double(declared) + " s, its frames end at " +
                       fmt_double(ends) + " s (" + std::to_string(count) + " frames)");
  }
  // A header that counts its frames (MP4's sample tables) and a file that ends early.
  if (v.stream->nb_frames > 0 && count < v.stream->nb_frames)
    throw VideoError(name + ": truncated video: its header declares " + std::to_string(v.stream->nb_frames) +
                     " frames, the file holds " + std::to_string(count));
  VideoInfo info;
  info.frame_count = count;
  info.fps = v.fps;
  info.duration_s = static_cast<double>(count) / v.fps;
  info.width = v.stream->codecpar->width;
  info.height = v.stream->codecpar->height;
  info.codec = v.codec;
  return info;
}

namespace {

// The decoder side of decode_frames: frames out in presentation order, numbered, the wanted ones
// converted.
class FrameCollector {
 public:
  FrameCollector(const std::vector<int64_t>& indices, const VideoLimits& limits, const std::string& name,
                 const std::function<void(Frame&&)>& on_frame)
      : indices_(indices), limits_(limits), name_(name), on_frame_(on_frame) {}

  bool done() const { return next_ == indices_.size(); }
  int64_t decoded() const { return decoded_; }
  size_t delivered() const { return next_; }

  // Drains every frame the decoder has ready.
  void drain(AVCodecContext* dec, AVFrame* frame) {
    for (;;) {
      const int r = avcodec_receive_frame(dec, frame);
      if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return;
      if (r < 0)
        throw VideoError(name_ + ": truncated or corrupt video: decoding frame " + std::to_string(decoded_) +
                         " failed: " + detail::av_error_text(r));
      keep(frame);
      av_frame_unref(frame);
      if (done()) return;
    }
  }

 private:
  void keep(const AVFrame* frame) {
    const int64_t index = decoded_++;
    if (decoded_ > limits_.max_frames_decoded)
      throw VideoError(name_ + ": decoding more than " + std::to_string(limits_.max_frames_decoded) +
                       " frames (max_frames_decoded)");
    // Streams may change size mid-stream: every frame is held to the header's limits.
    detail::check_frame_size(frame->width, frame->height, limits_, name_, "frame " + std::to_string(index));
    if (next_ == indices_.size() || indices_[next_] != index) return;
    image::Image rgb = detail::frame_to_rgb(frame, sws_, name_ + ": frame " + std::to_string(index));
    size_t n = 0;   // a repeated index: the same frame again
    while (next_ + n < indices_.size() && indices_[next_ + n] == index) ++n;
    for (size_t k = 0; k < n; ++k) {
      ++next_;
      on_frame_(Frame{index, k + 1 < n ? rgb : std::move(rgb)});
    }
  }

  const std::vector<int64_t>& indices_;
  const VideoLimits& limits_;
  const std::string& name_;
  const std::function<void(Frame&&)>& on_frame_;
  size_t next_ = 0;
  int64_t decoded_ = 0;
  detail::SwsPtr sws_;
};

detail::CodecPtr open_decoder(const OpenVideo& v, const VideoLimits& limits, const std::string& name) {
  const AVCodec* codec = avcodec_find_decoder(v.stream->codecpar->codec_id);
  if (!codec) throw VideoError(name + ": this FFmpeg has no decoder for " + v.codec);
  detail::CodecPtr dec(avcodec_alloc_context3(codec));
  if (!dec) throw VideoError(name + ": out of memory for the " + v.codec + " decoder");
  int r = avcodec_parameters_to_context(dec.get(), v.stream->codecpar);
  if (r < 0) throw VideoError(name + ": bad " + v.codec + " stream parameters: " + detail::av_error_text(r));
  dec->pkt_timebase = v.stream->time_base;
  detail::Dict opts;
  opts.set("threads", "1");  // the daemon runs requests on its own threads
  opts.set("max_pixels", std::to_string(std::min<uint64_t>(limits.max_frame_pixels, INT_MAX)));
  opts.set("codec_whitelist", detail::join(limits.codecs, ","));
  r = avcodec_open2(dec.get(), codec, opts.get());
  if (r < 0) throw VideoError(name + ": cannot open the " + v.codec + " decoder: " + detail::av_error_text(r));
  return dec;
}

}  // namespace

std::vector<Frame> decode_frames(const uint8_t* data, size_t size, const std::vector<int64_t>& indices,
                                 const VideoLimits& limits, const std::string& name,
                                 const image::DecodeInterrupt& interrupted) {
  std::vector<Frame> out;
  out.reserve(indices.size());
  decode_frames(data, size, indices, limits, name, [&](Frame&& f) { out.push_back(std::move(f)); }, interrupted);
  return out;
}

void decode_frames(const uint8_t* data, size_t size, const std::vector<int64_t>& indices, const VideoLimits& limits,
                   const std::string& name, const std::function<void(Frame&&)>& on_frame,
                   const image::DecodeInterrupt& interrupted) {
  detail::poll(interrupted, name);
  for (size_t i = 0; i < indices.size(); ++i) {
    if (indices[i] < 0 || (i > 0 && indices[i] < indices[i - 1]))
      throw VideoError(name + ": frame indices must be non-negative and non-decreasing (index " + std::to_string(i) +
                       " is " + std::to_string(indices[i]) + ")");
  }
  if (indices.empty()) return;
  if (indices.back() >= limits.max_frames_decoded)
    throw VideoError(name + ": frame " + std::to_string(indices.back()) + " needs " +
                     std::to_string(indices.back() + 1) + " frames decoded, above the limit of " +
                     std::to_string(limits.max_frames_decoded) + " (max_frames_decoded)");

  OpenVideo v = detail::open_video(data, size, limits, name);
  detail::CodecPtr dec = open_decoder(v, limits, name);
  detail::PacketPtr pkt(av_packet_alloc());
  detail::FramePtr frame(av_frame_alloc());
  if (!pkt || !frame) throw VideoError(name + ": out of memory for decoding");

  FrameCollector frames(indices, limits, name, on_frame);
  int64_t packets = 0;
  while (!frames.done() && next_packet(v, pkt.get(), packets, interrupted, name)) {
    ++packets;
    const int r = avcodec_send_packet(dec.get(), pkt.get());
    if (r < 0 && r != AVERROR(EAGAIN))
      throw VideoError(name + ": truncated or corrupt video: decoding packet " + std::to_string(packets - 1) +
                       " failed: " + detail::av_error_text(r));
    frames.drain(dec.get(), frame.get());
  }
  if (!frames.done()) {  // the end of the file: the frames still inside the decoder
    const int r = avcodec_send_packet(dec.get(), nullptr);
    if (r < 0 && r != AVERROR_EOF)
      throw VideoError(name + ": flushing the decoder failed: " + detail::av_error_text(r));
    frames.drain(dec.get(), frame.get());
  }
  if (!frames.done()) {
    const int64_t missing = indices[frames.delivered()];
    throw VideoError(name + ": truncated video: frame " + std::to_string(missing) + " was not found, the stream held " +
                     std::to_string(frames.decoded()) + " frames");
  }
}

}  // namespace omni::video
