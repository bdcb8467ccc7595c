// Bounded and interruptible decoding: the JPEG scan and work limits (a few bytes per scan
// must not buy seconds of CPU), the caller's interrupt stopping every decoder, and every
// refusal of the input being a DecodeError, so that callers classify by type.
#include <catch2/catch.hpp>
#include <png.h>
#include <cstdio>  // jpeglib.h needs FILE
#include <jpeglib.h>
#include <webp/decode.h>
#include <webp/encode.h>

#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "helpers.h"
#include "image/decode.h"

using namespace omni::image;
using namespace omni::image::test;
using Catch::Contains;

namespace {

Image decode_bytes(const std::vector<uint8_t>& b, const DecodeLimits& limits = {},
                   const DecodeInterrupt& interrupted = {}) {
  return decode_image(b.data(), b.size(), limits, "test.img", interrupted);
}

// A progressive 8-bit gray JPEG declaring w x h whose scans carry no entropy data: a DC scan,
// then scans-1 AC scans of ten bytes each. libjpeg still walks every block of every scan
// (the entropy decoder, out of data, codes zeros), which is what made such files cost minutes.
std::vector<uint8_t> empty_scans_jpeg(int w, int h, int scans) {
  std::vector<uint8_t> f = {0xFF, 0xD8};
  auto segment = [&](uint8_t marker, const std::vector<uint8_t>& body) {
    const size_t n = body.size() + 2;
    f.insert(f.end(), {0xFF, marker, static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n)});
    f.insert(f.end(), body.begin(), body.end());
  };
  std::vector<uint8_t> dqt(65, 1);
  dqt[0] = 0;
  segment(0xDB, dqt);
  // One-code Huffman tables (symbol 0, 1 bit), DC table 0 and AC table 0.
  std::vector<uint8_t> dht;
  for (uint8_t cls : {0x00, 0x10}) {
    dht.push_back(cls);
    dht.push_back(1);
    dht.insert(dht.end(), 15, 0);
    dht.push_back(0);
  }
  segment(0xC4, dht);
  segment(0xC2, {8, static_cast<uint8_t>(h >> 8), static_cast<uint8_t>(h), static_cast<uint8_t>(w >> 8),
                 static_cast<uint8_t>(w), 1, 1, 0x11, 0});
  segment(0xDA, {1, 1, 0x00, 0, 0, 0});
  for (int i = 1; i < scans; ++i) segment(0xDA, {1, 1, 0x00, 1, 63, 0});
  f.insert(f.end(), {0xFF, 0xD9});
  return f;
}

// The same coefficients re-coded as a progressive JPEG (libjpeg's default 10-scan script for
// colour, 6 for gray): lossless, so it must decode to exactly the original's pixels.
std::vector<uint8_t> to_progressive(const std::vector<uint8_t>& in) {
  jpeg_decompress_struct src;
  jpeg_error_mgr src_err;
  src.err = jpeg_std_error(&src_err);
  jpeg_create_decompress(&src);
  jpeg_mem_src(&src, in.data(), static_cast<unsigned long>(in.size()));
  jpeg_read_header(&src, TRUE);
  jvirt_barray_ptr* coefs = jpeg_read_coefficients(&src);
  jpeg_compress_struct dst;
  jpeg_error_mgr dst_err;
  dst.err = jpeg_std_error(&dst_err);
  jpeg_create_compress(&dst);
  unsigned char* buf = nullptr;
  unsigned long n = 0;
  jpeg_mem_dest(&dst, &buf, &n);
  jpeg_copy_critical_parameters(&src, &dst);
  jpeg_simple_progression(&dst);
  jpeg_write_coefficients(&dst, coefs);
  jpeg_finish_compress(&dst);
  std::vector<uint8_t> out(buf, buf + n);
  std::free(buf);
  jpeg_destroy_compress(&dst);
  jpeg_finish_decompress(&src);
  jpeg_destroy_decompress(&src);
  return out;
}

bool has_marker(const std::vector<uint8_t>& f, uint8_t marker) {
  for (size_t i = 0; i + 1 < f.size(); ++i)
    if (f[i] == 0xFF && f[i + 1] == marker) return true;
  return false;
}

std::vector<uint8_t> noise_rgb(int w, int h) {
  std::vector<uint8_t> px(static_cast<size_t>(w) * h * 3);
  uint32_t x = 12345;
  for (auto& v : px) {
    x = x * 1664525u + 1013904223u;
    v = static_cast<uint8_t>(x >> 24);
  }
  return px;
}

void append_bytes(png_structp png, png_bytep data, size_t n) {
  auto* out = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(png));
  out->insert(out->end(), data, data + n);
}

std::vector<uint8_t> encode_png(int w, int h, bool interlaced) {
  std::vector<uint8_t> px = noise_rgb(w, h), out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  png_set_write_fn(png, &out, append_bytes, nullptr);
  png_set_IHDR(png, info, w, h, 8, PNG_COLOR_TYPE_RGB,
               interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  std::vector<png_bytep> rows(h);
  for (int y = 0; y < h; ++y) rows[y] = px.data() + static_cast<size_t>(y) * w * 3;
  png_set_rows(png, info, rows.data());
  png_write_png(png, info, PNG_TRANSFORM_IDENTITY, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

std::vector<uint8_t> encode_webp(int w, int h, bool lossless) {
  std::vector<uint8_t> px = noise_rgb(w, h);
  uint8_t* buf = nullptr;
  const size_t n = lossless ? WebPEncodeLosslessRGB(px.data(), w, h, w * 3, &buf)
                            : WebPEncodeRGB(px.data(), w, h, w * 3, 90, &buf);
  REQUIRE(n > 0);
  std::vector<uint8_t> out(buf, buf + n);
  WebPFree(buf);
  return out;
}

// The message of the DecodeError decoding throws (decodes once: the file below is slow-ish).
std::string decode_error_of(const std::vector<uint8_t>& file) {
  try {
    decode_bytes(file);
  } catch (const DecodeError& e) {
    return e.what();
  }
  return "no DecodeError";
}

// Counts polls; answers true from poll stop_after + 1 on (never when stop_after < 0).
struct PollCounter {
  int polls = 0;
  int stop_after = -1;
  DecodeInterrupt fn() {
    return [this] { return ++polls > stop_after && stop_after >= 0; };
  }
};

// Decodes once without stopping to count the polls, then stops it at the first, a middle and
// the last poll: each throws DecodeInterrupted at once (no poll after the one that said stop).
void check_interruptible(const std::vector<uint8_t>& file, int min_polls) {
  PollCounter all;
  const Image full = decode_bytes(file, {}, all.fn());
  CHECK(full.width > 0);
  CHECK(all.polls >= min_polls);
  for (int n : {0, 1, all.polls / 2, all.polls - 1}) {
    INFO("stop after " << n << " of " << all.polls << " polls");
    PollCounter stop;
    stop.stop_after = n;
    CHECK_THROWS_AS(decode_bytes(file, {}, stop.fn()), DecodeInterrupted);
    CHECK(stop.polls == n + 1);
  }
  PollCounter stop;
  stop.stop_after = 1;
  CHECK_THROWS_WITH(decode_bytes(file, {}, stop.fn()), Contains("test.img: decoding stopped by the caller"));
}

}  // namespace

TEST_CASE("a JPEG with 20000 empty scans is refused at the scan limit") {
  const auto jpg = empty_scans_jpeg(64, 64, 20000);
  CHECK(jpg.size() < 250'000);
  CHECK_THROWS_AS(decode_bytes(jpg), DecodeError);
  CHECK_THROWS_WITH(decode_bytes(jpg), Contains("test.img: JPEG has more than 500 scans") &&
                                           Contains("max_jpeg_scans"));
}

TEST_CASE("the scan limit is configurable and counts every scan") {
  const auto jpg = empty_scans_jpeg(64, 64, 10);
  DecodeLimits lim;
  lim.max_jpeg_scans = 10;
  CHECK(decode_bytes(jpg, lim).width == 64);
  lim.max_jpeg_scans = 9;
  CHECK_THROWS_WITH(decode_bytes(jpg, lim), Contains("test.img: JPEG has more than 9 scans"));
  // A baseline file is one scan.
  lim.max_jpeg_scans = 1;
  CHECK(decode_bytes(read_bytes(data_path("image/jpeg_rgb.jpg")), lim).width > 0);
}

TEST_CASE("the 6000x6000 JPEG of 20000 empty scans is stopped by the work limit within 45 scans") {
  const auto jpg = empty_scans_jpeg(6000, 6000, 20000);
  CHECK(jpg.size() < 250'000);
  // 6000x6000 = 36e6 samples a scan: over 1.6e9 at the 45th, which is not walked.
  CHECK_THAT(decode_error_of(jpg), Contains("test.img: JPEG needs more than 1600000000 samples of decoding "
                                                "work (max_decode_work): 1620000000 by scan 45 of its 6000x6000"));
}

TEST_CASE("the work limit is configurable for every format") {
  DecodeLimits lim;
  lim.max_decode_work = 1000;
  lim.min_side = 1;
  CHECK_THROWS_WITH(decode_bytes(read_bytes(data_path("image/jpeg_rgb.jpg")), lim),
                    Contains("test.img: JPEG needs more than 1000 samples of decoding work (max_decode_work)"));
  CHECK_THROWS_AS(decode_bytes(encode_png(32, 32, false), lim), DecodeError);
  CHECK_THROWS_WITH(decode_bytes(encode_png(32, 32, false), lim),
                    Contains("test.img: decoding it takes 3072 samples of work, above the limit of 1000 (max_decode_work)"));
  CHECK_THROWS_WITH(decode_bytes(encode_webp(32, 32, true), lim),
                    Contains("test.img: decoding it takes 3072 samples of work, above the limit of 1000"));
  lim.max_decode_work = 3072;
  CHECK(decode_bytes(encode_png(32, 32, false), lim).width == 32);
}

TEST_CASE("a progressive JPEG decodes to exactly the pixels of its baseline original") {
  for (const char* name : {"jpeg_rgb", "jpeg_gray", "jpeg_cmyk"}) {
    INFO(name);
    const auto baseline = read_bytes(data_path(std::string("image/") + name + ".jpg"));
    const auto progressive = to_progressive(baseline);
    REQUIRE(has_marker(progressive, 0xC2));  // SOF2: progressive
    DecodeLimits lim;
    lim.min_side = 1;
    const Image out = decode_bytes(progressive, lim);
    const Image expect = ref_image(name);
    REQUIRE(out.width == expect.width);
    REQUIRE(out.height == expect.height);
    CHECK(compare(out, expect).differing == 0);
  }
}

TEST_CASE("chunked WebP decoding gives the pixels of a one-shot decode") {
  for (bool lossless : {false, true}) {
    INFO((lossless ? "lossless" : "lossy"));
    const auto file = encode_webp(lossless ? 256 : 512, lossless ? 256 : 512, lossless);
    CHECK(file.size() > 100'000);  // several chunks
    int w = 0, h = 0;
    uint8_t* ref = WebPDecodeRGB(file.data(), file.size(), &w, &h);
    REQUIRE(ref != nullptr);
    Image expect;
    expect.width = w;
    expect.height = h;
    expect.rgb.assign(ref, ref + static_cast<size_t>(w) * h * 3);
    WebPFree(ref);
    const Image out = decode_bytes(file);
    REQUIRE(out.width == w);
    CHECK(compare(out, expect).differing == 0);
  }
}

TEST_CASE("the caller's interrupt stops JPEG decoding with DecodeInterrupted") {
  const auto baseline = read_bytes(data_path("image/jpeg_rgb.jpg"));
  SECTION("baseline: polled once per output row") { check_interruptible(baseline, 43); }
  SECTION("progressive: also polled while its scans are read") {
    check_interruptible(to_progressive(baseline), 43 + 10);
  }
  SECTION("while walking empty scans") { check_interruptible(empty_scans_jpeg(64, 64, 400), 400); }
}

TEST_CASE("the caller's interrupt stops PNG decoding with DecodeInterrupted") {
  SECTION("not interlaced: polled once per row") { check_interruptible(encode_png(48, 40, false), 40); }
  SECTION("interlaced: polled once per row of each of the 7 passes") {
    check_interruptible(encode_png(48, 40, true), 7 * 40);
  }
}

TEST_CASE("the caller's interrupt stops WebP decoding with DecodeInterrupted") {
  SECTION("lossy") { check_interruptible(encode_webp(512, 512, false), 4); }
  SECTION("lossless") { check_interruptible(encode_webp(256, 256, true), 4); }
}

TEST_CASE("an exception thrown by the interrupt passes through after the decoder is cleaned up") {
  int polls = 0;
  auto throwing = [&polls]() -> bool {
    if (++polls == 3) throw std::runtime_error("interrupt broke");
    return false;
  };
  const auto jpg = read_bytes(data_path("image/jpeg_rgb.jpg"));
  CHECK_THROWS_WITH(decode_bytes(jpg, {}, throwing), "interrupt broke");
  polls = 0;
  CHECK_THROWS_WITH(decode_bytes(encode_png(48, 40, true), {}, throwing), "interrupt broke");
  polls = 0;
  CHECK_THROWS_WITH(decode_bytes(encode_webp(256, 256, false), {}, throwing), "interrupt broke");
}

TEST_CASE("every refusal of the input is a DecodeError") {
  const auto jpg = read_bytes(data_path("image/jpeg_rgb.jpg"));
  auto half_jpg = jpg;
  half_jpg.resize(jpg.size() / 2);
  CHECK_THROWS_AS(decode_bytes(half_jpg), DecodeError);
  CHECK_THROWS_AS(decode_bytes({0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x03, 0x00, 0x00}), DecodeError);
  CHECK_THROWS_AS(decode_bytes(std::vector<uint8_t>(100, 0x42)), DecodeError);  // unknown format
  CHECK_THROWS_AS(decode_bytes({'G', 'I', 'F', '8', '9', 'a', 0, 0}), DecodeError);
  CHECK_THROWS_AS(decode_bytes({}), DecodeError);
  CHECK_THROWS_AS(decode_bytes(empty_scans_jpeg(100000, 60000, 2)), DecodeError);  // over max_pixels
  CHECK_THROWS_WITH(decode_bytes(empty_scans_jpeg(60000, 60000, 2)), Contains("above the limit of 40000000 pixels"));
  auto png = encode_png(48, 40, false);
  png.resize(png.size() / 2);
  CHECK_THROWS_AS(decode_bytes(png), DecodeError);
  auto webp = encode_webp(64, 64, false);
  webp.resize(webp.size() / 2);
  CHECK_THROWS_AS(decode_bytes(webp), DecodeError);
  CHECK_THROWS_WITH(decode_bytes(webp), Contains("test.img: invalid or corrupt WebP: not enough data"));
  DecodeLimits small;
  small.max_encoded_bytes = 10;
  CHECK_THROWS_AS(decode_bytes(jpg, small), DecodeError);
  CHECK_THROWS_AS(load_image_file("/nonexistent/x.png", {}), DecodeError);
  // A refusal is never mistaken for an interrupt, and the other way round.
  CHECK_THROWS_AS(decode_bytes(half_jpg, {}, [] { return false; }), DecodeError);
  CHECK_THROWS_AS(decode_bytes(half_jpg, {}, [] { return true; }), DecodeInterrupted);
}

TEST_CASE("a PNG chunk declaring more bytes than the file holds is not allocated") {
  // Found by fuzz_image_decode: libpng allocated such an eXIf chunk's 1.5 GB before reading it.
  const std::vector<uint8_t> huge = {0x5B, 0x00, 0x00, 0x1A, 'e', 'X', 'I', 'f', 'M', 'M', 0, '*'};
  const auto png = encode_png(48, 40, false);
  SECTION("before the image data: refused as truncated, naming the chunk") {
    std::vector<uint8_t> f(png.begin(), png.begin() + 33);  // signature + IHDR
    f.insert(f.end(), huge.begin(), huge.end());
    f.insert(f.end(), 64, 0);
    CHECK_THROWS_AS(decode_bytes(f), DecodeError);
    CHECK_THROWS_WITH(decode_bytes(f), Contains("test.img: invalid or corrupt PNG: file is truncated (its eXIf "
                                                "chunk declares 1526726682 bytes, 64 are left)"));
  }
  SECTION("after the image data: the picture decodes, as with any truncated trailing chunk") {
    std::vector<uint8_t> f(png.begin(), png.end() - 12);  // all but IEND
    f.insert(f.end(), huge.begin(), huge.end());
    f.insert(f.end(), png.end() - 12, png.end());
    PollCounter polls;
    const Image out = decode_bytes(f, {}, polls.fn());
    CHECK(compare(out, decode_bytes(png)).differing == 0);
    CHECK(polls.polls == 1 + 40);
  }
}
