// open_video(): a memory AVIOContext, the container probed by FFmpeg and checked against
// VideoLimits::formats before its demuxer runs, the header read with nested opens refused,
// the video stream's codec and size checked before avformat_find_stream_info (which opens a
// decoder to fill in what the header lacks), then checked again.
#include "video/demux.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>

namespace omni::video::detail {
namespace {

constexpr int kIoBufferSize = 64 * 1024;
constexpr unsigned kMaxProbeBytes = 1 << 20;        // bytes av_probe_input_buffer2 may read
constexpr int64_t kStreamInfoProbeBytes = 5'000'000;  // bytes avformat_find_stream_info may read

int read_memory(void* opaque, uint8_t* buf, int n) {
  auto* r = static_cast<MemoryReader*>(opaque);
  if (r->pos >= r->size) return AVERROR_EOF;
  const size_t k = std::min(static_cast<size_t>(n), r->size - r->pos);
  std::memcpy(buf, r->data + r->pos, k);
  r->pos += k;
  return static_cast<int>(k);
}

int64_t seek_memory(void* opaque, int64_t offset, int whence) {
  auto* r = static_cast<MemoryReader*>(opaque);
  whence &= ~AVSEEK_FORCE;
  if (whence == AVSEEK_SIZE) return static_cast<int64_t>(r->size);
  int64_t base = 0;
  if (whence == SEEK_CUR) base = static_cast<int64_t>(r->pos);
  else if (whence == SEEK_END) base = static_cast<int64_t>(r->size);
  else if (whence != SEEK_SET) return AVERROR(EINVAL);
  if ((offset > 0 && base > std::numeric_limits<int64_t>::max() - offset)) return AVERROR(EINVAL);
  const int64_t to = base + offset;
  if (to < 0 || static_cast<uint64_t>(to) > r->size) return AVERROR(EINVAL);
  r->pos = static_cast<size_t>(to);
  return to;
}

// A demuxer that wants another file (mov data references, playlists) gets none.
int refuse_nested_open(AVFormatContext*, AVIOContext**, const char*, int, AVDictionary**) { return AVERROR(EPERM); }

// FFmpeg logs to stderr by default; its messages would interleave with the daemon's log and
// could be driven by hostile input. Refusals carry av_strerror's text instead.
//
// And one allocation is capped: a demuxer sizes its tables from counts in the header (a 3 KB
// MP4 whose sample table claims millions of entries asked for 1 GiB at once, found by
// fuzz_video_decode), so without a cap a tiny hostile file costs a gigabyte per request. The
// largest buffer a legitimate file needs is one decoded frame: 40 MP (VideoLimits'
// max_frame_pixels default, the daemon's max_image_pixels) of 4-byte pixels is 160 MB.
// FFmpeg's cap is per process, for every allocation through av_malloc: this process decodes
// videos only here.
constexpr size_t kMaxFfmpegAllocation = 192u << 20;

void quiet_ffmpeg() {
  static std::once_flag once;
  std::call_once(once, [] {
    av_log_set_level(AV_LOG_QUIET);
    av_max_alloc(kMaxFfmpegAllocation);
  });
}

bool listed(const char* comma_names, const std::vector<std::string>& allowed) {
  std::string names = comma_names ? comma_names : "";
  size_t start = 0;
  while (start <= names.size()) {
    const size_t end = std::min(names.find(',', start), names.size());
    if (std::find(allowed.begin(), allowed.end(), names.substr(start, end - start)) != allowed.end()) return true;
    start = end + 1;
  }
  return false;
}

std::string codec_name(AVCodecID id) {
  const AVCodecDescriptor* d = avcodec_descriptor_get(id);
  return d ? d->name : "unknown";
}

double stream_fps(const AVStream* st) {
  if (st->avg_frame_rate.num > 0 && st->avg_frame_rate.den > 0) return av_q2d(st->avg_frame_rate);
  if (st->r_frame_rate.num > 0 && st->r_frame_rate.den > 0) return av_q2d(st->r_frame_rate);
  return 0;
}

void choose_stream(OpenVideo& v, const std::string& name) {
  const int best = av_find_best_stream(v.fmt.get(), AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  if (best < 0) {
    v.stream_index = -1;
    return;
  }
  v.stream_index = best;
  v.stream = v.fmt->streams[best];
  for (unsigned i = 0; i < v.fmt->nb_streams; ++i)
    if (static_cast<int>(i) != best) v.fmt->streams[i]->discard = AVDISCARD_ALL;  // audio, subtitles: not read
  (void)name;
}

void check_codec(OpenVideo& v, const VideoLimits& limits, const std::string& name) {
  v.codec = codec_name(v.stream->codecpar->codec_id);
  if (std::find(limits.codecs.begin(), limits.codecs.end(), v.codec) == limits.codecs.end())
    throw VideoError(name + ": video codec " + v.codec + " is not allowed (allowed: " + join(limits.codecs, ", ") +
                     ")");
}

}  // namespace

std::string av_error_text(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  if (av_strerror(code, buf, sizeof buf) < 0) return "FFmpeg error " + std::to_string(code);
  return buf;
}

std::string join(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : sep) + s;
  return out;
}

void poll(const image::DecodeInterrupt& interrupted, const std::string& name) {
  if (interrupted && interrupted())
    throw image::DecodeInterrupted(name +
                                   ": decoding stopped by the caller (cancelled, past its deadline or shutting down)");
}

void check_frame_size(int64_t width, int64_t height, const VideoLimits& limits, const std::string& name,
                      const std::string& what) {
  const std::string dims = std::to_string(width) + "x" + std::to_string(height);
  if (width <= 0 || height <= 0) throw VideoError(name + ": " + what + " declares an empty " + dims + " picture");
  if (static_cast<uint64_t>(width) > limits.max_frame_pixels / static_cast<uint64_t>(height))
    throw VideoError(name + ": " + what + " is " + dims + " = " +
                     std::to_string(static_cast<uint64_t>(width) * static_cast<uint64_t>(height)) +
                     " pixels, above the limit of " + std::to_string(limits.max_frame_pixels) + " pixels");
  if (std::min(width, height) < limits.min_side)
    throw VideoError(name + ": " + what + " is " + dims + " pixels; its smaller side " +
                     std::to_string(std::min(width, height)) + " is below the minimum of " +
                     std::to_string(limits.min_side));
}

OpenVideo open_video(const uint8_t* data, size_t size, const VideoLimits& limits, const std::string& name) {
  quiet_ffmpeg();
  if (size == 0 || data == nullptr) throw VideoError(name + ": empty input (0 bytes), not a video");
  if (size > limits.max_encoded_bytes)
    throw VideoError(name + ": encoded video is " + std::to_string(size) + " bytes, above the limit of " +
                     std::to_string(limits.max_encoded_bytes) + " bytes");

  OpenVideo v;
  v.reader = std::make_unique<MemoryReader>(MemoryReader{data, size, 0});
  auto* buffer = static_cast<unsigned char*>(av_malloc(kIoBufferSize));
  if (!buffer) throw VideoError(name + ": out of memory for the video's I/O buffer");
  AVIOContext* io = avio_alloc_context(buffer, kIoBufferSize, 0, v.reader.get(), read_memory, nullptr, seek_memory);
  if (!io) {
    av_free(buffer);
    throw VideoError(name + ": out of memory for the video's I/O context");
  }
  v.io.reset(io);

  const AVInputFormat* format = nullptr;
  const int score = av_probe_input_buffer2(v.io.get(), &format, "", nullptr, 0, kMaxProbeBytes);
  if (score < 0 || !format)
    throw VideoError(name + ": not a video container FFmpeg knows (" + av_error_text(score < 0 ? score : AVERROR_INVALIDDATA) +
                     ")");
  if (!listed(format->name, limits.formats))
    throw VideoError(name + ": container " + format->name + " is not allowed (allowed: " + join(limits.formats, ", ") +
                     ")");

  AVFormatContext* fmt = avformat_alloc_context();
  if (!fmt) throw VideoError(name + ": out of memory for the demuxer");
  fmt->pb = v.io.get();  // custom I/O: avformat_close_input leaves it to us
  fmt->io_open = refuse_nested_open;
  fmt->probesize = kStreamInfoProbeBytes;
  fmt->format_whitelist = av_strdup(join(limits.formats, ",").c_str());
  fmt->codec_whitelist = av_strdup(join(limits.codecs, ",").c_str());  // decoders find_stream_info opens
  if (!fmt->format_whitelist || !fmt->codec_whitelist) {
    avformat_free_context(fmt);
    throw VideoError(name + ": out of memory for the demuxer");
  }
  const int opened = avformat_open_input(&fmt, "", format, nullptr);  // frees fmt on failure
  if (opened == AVERROR_EOF)  // e.g. a Matroska file without a single cluster
    throw VideoError(name + ": the " + std::string(format->name) +
                     " file ends inside its header (truncated, or a container with no frames)");
  if (opened < 0) throw VideoError(name + ": cannot read the " + format->name + " header: " + av_error_text(opened));
  v.fmt.reset(fmt);

  // Before find_stream_info: what the header says is checked before a decoder is opened for it.
  choose_stream(v, name);
  if (v.stream) {
    check_codec(v, limits, name);
    const AVCodecParameters* par = v.stream->codecpar;
    if (par->width > 0 || par->height > 0) check_frame_size(par->width, par->height, limits, name, "frame header");
  }

  // One option set per stream: a decoder opened here is single-threaded and bounded in size.
  std::vector<AVDictionary*> options(v.fmt->nb_streams, nullptr);
  for (auto& d : options) {
    av_dict_set(&d, "threads", "1", 0);
    av_dict_set(&d, "max_pixels", std::to_string(std::min<uint64_t>(limits.max_frame_pixels, INT_MAX)).c_str(), 0);
  }
  const int info = avformat_find_stream_info(v.fmt.get(), options.empty() ? nullptr : options.data());
  for (auto& d : options) av_dict_free(&d);
  if (info < 0) throw VideoError(name + ": cannot read the video's stream parameters: " + av_error_text(info));

  if (!v.stream) {  // a container whose streams are only known after reading some packets
    choose_stream(v, name);
    if (!v.stream) throw VideoError(name + ": the " + std::string(format->name) + " file has no video stream");
    check_codec(v, limits, name);
  }
  const AVCodecParameters* par = v.stream->codecpar;
  check_frame_size(par->width, par->height, limits, name, "frame header");
  v.fps = stream_fps(v.stream);
  if (!(v.fps > 0) || !std::isfinite(v.fps))
    throw VideoError(name + ": the video stream has no usable frame rate (" +
                     std::to_string(v.stream->avg_frame_rate.num) + "/" + std::to_string(v.stream->avg_frame_rate.den) +
                     ")");
  return v;
}

}  // namespace omni::video::detail
