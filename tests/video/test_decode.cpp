// probe_video and decode_frames on clips encoded here (clip_writer.h): exact frames, frame
// counts and rates, and every kind of bad video refused with a VideoError naming the video and
// the cause.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <utility>

#include "clip_writer.h"
#include "video/video.h"

extern "C" {
#include <libavutil/mem.h>
}

using namespace omni::video;
using namespace omni::video::test;
using Catch::Contains;
using omni::image::DecodeInterrupted;

// The exception's type, and its message by a string matcher.
#define CHECK_REFUSED(expr, Type, matcher) \
  do {                                     \
    CHECK_THROWS_AS(expr, Type);           \
    CHECK_THROWS_WITH(expr, matcher);      \
  } while (0)

namespace {

const std::string kName = "clip.mkv";

VideoInfo probe(const std::vector<uint8_t>& f, const VideoLimits& limits = {},
                const omni::image::DecodeInterrupt& stop = {}) {
  return probe_video(f.data(), f.size(), limits, kName, stop);
}

std::vector<Frame> decode(const std::vector<uint8_t>& f, const std::vector<int64_t>& idx,
                          const VideoLimits& limits = {}, const omni::image::DecodeInterrupt& stop = {}) {
  return decode_frames(f.data(), f.size(), idx, limits, kName, stop);
}

// A flat frame of grey level 20 * i: survives lossy codecs well enough to tell frames apart.
omni::image::Image flat_frame(int index, int w, int h) {
  omni::image::Image img;
  img.width = w;
  img.height = h;
  img.rgb.assign(static_cast<size_t>(w) * h * 3, static_cast<uint8_t>(20 + 20 * index));
  return img;
}

double mean(const omni::image::Image& img) {
  double s = 0;
  for (uint8_t v : img.rgb) s += v;
  return s / static_cast<double>(img.rgb.size());
}

}  // namespace

TEST_CASE("FFV1 bgr0 frames come back bit for bit at the indices asked for") {
  const auto clip = write_clip({});
  const VideoInfo info = probe(clip);
  CHECK(info.frame_count == 12);
  CHECK(info.fps == Approx(30).epsilon(1e-6));
  CHECK(info.duration_s == Approx(0.4).epsilon(1e-6));
  CHECK(info.width == 32);
  CHECK(info.height == 24);
  CHECK(info.codec == "ffv1");
  const std::vector<int64_t> want = {0, 3, 3, 7, 11};
  const auto frames = decode(clip, want);
  REQUIRE(frames.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    INFO("frame " << want[i]);
    CHECK(frames[i].index == want[i]);
    const auto expected = pattern_frame(static_cast<int>(want[i]), 32, 24);
    CHECK(frames[i].rgb.width == 32);
    CHECK(frames[i].rgb.height == 24);
    CHECK(frames[i].rgb.rgb == expected.rgb);
  }
}

TEST_CASE("planar gbrp (Ut Video) and packed bgr24 (rawvideo in AVI) round-trip exactly too") {
  // FFmpeg 5.1's FFV1 encoder takes no 8-bit gbrp; Ut Video (lossless) does. Its Matroska
  // muxer has no tag for rawvideo; AVI stores it as BI_RGB, which is bgr24.
  struct Case {
    const char *codec, *pix, *container;
  };
  for (const auto& [codec, pix, container] : {Case{"utvideo", "gbrp", "matroska"}, Case{"rawvideo", "bgr24", "avi"}}) {
    INFO(codec << " " << pix);
    ClipSpec spec;
    spec.container = container;
    spec.codec = codec;
    spec.pix_fmt = pix;
    spec.width = 40;
    spec.height = 30;
    spec.frames = 6;
    const auto clip = write_clip(spec);
    CHECK(probe(clip).codec == codec);
    const auto frames = decode(clip, {1, 5});
    REQUIRE(frames.size() == 2);
    CHECK(frames[0].rgb.rgb == pattern_frame(1, 40, 30).rgb);
    CHECK(frames[1].rgb.rgb == pattern_frame(5, 40, 30).rgb);
  }
}

TEST_CASE("probe counts every frame and reads the rate for several lengths and rates") {
  struct Case {
    int frames, num, den;
    const char* container;
  };
  for (const Case c : {Case{1, 30, 1, "matroska"}, Case{48, 24000, 1001, "matroska"}, Case{250, 25, 1, "matroska"},
                       Case{90, 30000, 1001, "matroska"}, Case{5, 5, 2, "matroska"}, Case{61, 60, 1, "matroska"},
                       Case{90, 30000, 1001, "avi"}, Case{20, 1, 1, "avi"}}) {
    INFO(c.frames << " frames at " << c.num << "/" << c.den << " in " << c.container);
    ClipSpec spec;
    spec.container = c.container;
    spec.frames = c.frames;
    spec.fps_num = c.num;
    spec.fps_den = c.den;
    spec.width = spec.height = 16;
    const auto info = probe(write_clip(spec));
    const double fps = static_cast<double>(c.num) / c.den;
    CHECK(info.frame_count == c.frames);
    // Matroska stores a frame duration in nanoseconds: the rate read back is within 1e-6.
    CHECK(info.fps == Approx(fps).epsilon(1e-6));
    CHECK(info.duration_s == Approx(c.frames / fps).epsilon(1e-6));
  }
}

TEST_CASE("AVI keeps an NTSC rate exactly") {
  ClipSpec spec;
  spec.container = "avi";
  spec.fps_num = 30000;
  spec.fps_den = 1001;
  spec.width = spec.height = 16;
  CHECK(probe(write_clip(spec)).fps == 30000.0 / 1001.0);
}

TEST_CASE("MPEG-4 with B-frames gives frames in presentation order") {
  ClipSpec spec;
  spec.codec = "mpeg4";
  spec.pix_fmt = "yuv420p";
  spec.width = 64;
  spec.height = 48;
  spec.frames = 10;
  spec.max_b_frames = 2;
  const auto clip = write_clip(spec, flat_frame);
  CHECK(probe(clip).codec == "mpeg4");
  const auto frames = decode(clip, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  REQUIRE(frames.size() == 10);
  for (int i = 0; i < 10; ++i) {
    INFO("frame " << i);
    CHECK(frames[i].index == i);
    CHECK(mean(frames[i].rgb) == Approx(20 + 20 * i).margin(3));
  }
}

TEST_CASE("a file cut at half is refused as truncated") {
  auto clip = write_clip({});
  clip.resize(clip.size() / 2);
  const auto check = [&] {
    const VideoInfo info = probe(clip);  // what is left of the stream may still be readable
    CHECK(info.frame_count < 12);
    decode(clip, {0, 11});
  };
  CHECK_REFUSED(check(), VideoError, Contains(kName) && Contains("truncated"));
  try {
    decode(clip, {0, 11});
  } catch (const VideoError& e) {
    const std::string m = e.what();
    if (m.find("was not found") != std::string::npos) CHECK_THAT(m, Contains("frame 11") && Contains("held"));
  }
}

TEST_CASE("a container with a video stream and no frames is refused") {
  ClipSpec spec;
  spec.frames = 0;
  spec.container = "avi";
  const auto clip = write_clip(spec);
  CHECK_REFUSED(probe(clip), VideoError, Contains(kName) && Contains("no frames"));
  CHECK_REFUSED(decode(clip, {0}), VideoError, Contains(kName) && Contains("frame 0 was not found") && Contains("held 0"));
  // Matroska without a cluster: FFmpeg's demuxer cannot finish reading the header.
  spec.container = "matroska";
  CHECK_REFUSED(probe(write_clip(spec)), VideoError, Contains(kName) && Contains("no frames"));
}

TEST_CASE("a 20000x20000 frame header is refused before decoding") {
  ClipSpec spec;
  spec.width = spec.height = 256;  // PixelWidth/PixelHeight written as 2-byte EBML uints: 0x0100
  spec.frames = 2;
  auto clip = write_clip(spec);
  patch_once(clip, {0xB0, 0x82, 0x01, 0x00}, {0xB0, 0x82, 0x4E, 0x20});  // PixelWidth 20000
  patch_once(clip, {0xBA, 0x82, 0x01, 0x00}, {0xBA, 0x82, 0x4E, 0x20});  // PixelHeight 20000
  CHECK_REFUSED(probe(clip), VideoError,
                       Contains(kName) && Contains("20000x20000") && Contains("above the limit"));
  CHECK_REFUSED(decode(clip, {0}), VideoError, Contains("20000x20000"));
}

TEST_CASE("frames smaller than min_side are refused") {
  VideoLimits limits;
  limits.min_side = 30;
  CHECK_REFUSED(probe(write_clip({}), limits), VideoError, Contains("32x24") && Contains("below the minimum"));
}

TEST_CASE("an absurd duration is refused") {
  ClipSpec spec;
  spec.frames = 3;
  spec.fps_num = 1;
  spec.fps_den = 100000;  // a frame every 27.8 hours
  spec.width = spec.height = 16;
  CHECK_REFUSED(probe(write_clip(spec)), VideoError,
                       Contains(kName) && Contains("above the limit of 10800 s"));
}

TEST_CASE("more frames than max_frames are refused") {
  VideoLimits limits;
  limits.max_frames = 5;
  CHECK_REFUSED(probe(write_clip({}), limits), VideoError, Contains("more than 5 frames"));
}

TEST_CASE("a frame past max_frames_decoded is refused before decoding") {
  VideoLimits limits;
  limits.max_frames_decoded = 5;
  CHECK_REFUSED(decode(write_clip({}), {0, 11}, limits), VideoError, Contains("max_frames_decoded"));
  CHECK(decode(write_clip({}), {4}, limits).size() == 1);
}

TEST_CASE("a codec outside the allowed list is refused and named") {
  ClipSpec spec;
  spec.codec = "mpeg1video";  // FFmpeg encodes it; not in VideoLimits::codecs
  spec.pix_fmt = "yuv420p";
  spec.width = spec.height = 32;
  const auto clip = write_clip(spec);
  CHECK_REFUSED(probe(clip), VideoError,
                       Contains(kName) && Contains("mpeg1video is not allowed") && Contains("h264"));
  CHECK_REFUSED(decode(clip, {0}), VideoError, Contains("mpeg1video is not allowed"));
  VideoLimits no_ffv1;
  no_ffv1.codecs = {"h264"};
  CHECK_REFUSED(probe(write_clip({}), no_ffv1), VideoError, Contains("ffv1 is not allowed (allowed: h264)"));
}

TEST_CASE("a container outside the allowed list is refused and named") {
  VideoLimits only_avi;
  only_avi.formats = {"avi"};
  CHECK_REFUSED(probe(write_clip({}), only_avi), VideoError,
                       Contains("container matroska,webm is not allowed"));
}

TEST_CASE("garbage, empty and oversized inputs are refused") {
  std::vector<uint8_t> garbage(4096);
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<uint8_t>(i * 7919 % 251);
  CHECK_REFUSED(probe(garbage), VideoError, Contains(kName) && Contains("not a video container"));
  CHECK_REFUSED(probe({}), VideoError, Contains(kName) && Contains("empty input"));
  VideoLimits small;
  small.max_encoded_bytes = 100;
  CHECK_REFUSED(probe(write_clip({}), small), VideoError, Contains("above the limit of 100 bytes"));
  CHECK_REFUSED(decode(garbage, {0}), VideoError, Contains("not a video container"));
}

TEST_CASE("bad frame index lists are refused") {
  const auto clip = write_clip({});
  CHECK_THROWS_AS(decode(clip, {3, 2}), VideoError);
  CHECK_THROWS_AS(decode(clip, {-1}), VideoError);
  CHECK(decode(clip, {}).empty());
  CHECK_REFUSED(decode(clip, {20}), VideoError, Contains("frame 20 was not found") && Contains("held 12"));
}

TEST_CASE("the caller's interrupt stops probing and decoding") {
  const auto clip = write_clip({});
  for (int after : {0, 1, 5}) {
    INFO("stop after " << after << " polls");
    int polls = 0;
    auto stop = [&] { return polls++ >= after; };
    CHECK_REFUSED(probe(clip, {}, stop), DecodeInterrupted, Contains(kName));
    polls = 0;
    CHECK_REFUSED(decode(clip, {11}, {}, stop), DecodeInterrupted, Contains(kName));
  }
  // An exception thrown by the callback itself passes through.
  auto throws = [] () -> bool { throw std::runtime_error("deadline clock broke"); };
  CHECK_REFUSED(probe(clip, {}, throws), std::runtime_error, Contains("deadline clock broke"));
}

TEST_CASE("a tiny MP4 whose header claims a huge sample table is refused without a gigabyte allocation") {
  // Found by fuzz_video_decode: 3 KB that made the mov demuxer ask for 1 GiB at once
  // (FFmpeg's allocations are capped now: daemon/video/demux.cpp).
  std::ifstream in(std::string(OMNI_TEST_DATA) + "/video/fuzz/mp4_huge_sample_table.mp4", std::ios::binary);
  REQUIRE(in);
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
  CHECK_THROWS_AS(probe(bytes), VideoError);
  // The cap itself: what a legitimate frame needs passes, a gigabyte does not.
  void* frame = av_malloc(size_t(160) << 20);
  CHECK(frame != nullptr);
  av_free(frame);
  void* huge = av_malloc(size_t(1) << 30);
  CHECK(huge == nullptr);
  av_free(huge);
}
