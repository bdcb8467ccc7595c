// Decoding: Pillow-identical conversion to RGB for every PNG colour type, JPEG and WebP,
// EXIF orientation, and a clear omni::Error for every kind of bad input.
#include <catch2/catch.hpp>
#include <png.h>
#include <zlib.h>

#include <cstring>

#include "helpers.h"
#include "image/decode.h"
#include "util/error.h"

using namespace omni::image;
using namespace omni::image::test;
using Catch::Contains;

namespace {

std::vector<uint8_t> encode_png(int w, int h) {  // a real RGB PNG made by libpng
  std::vector<uint8_t> px(static_cast<size_t>(w) * h * 3);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(i * 31);
  png_image im;
  std::memset(&im, 0, sizeof im);
  im.version = PNG_IMAGE_VERSION;
  im.width = w;
  im.height = h;
  im.format = PNG_FORMAT_RGB;
  png_alloc_size_t n = 0;
  REQUIRE(png_image_write_to_memory(&im, nullptr, &n, 0, px.data(), 0, nullptr));
  std::vector<uint8_t> out(n);
  REQUIRE(png_image_write_to_memory(&im, out.data(), &n, 0, px.data(), 0, nullptr));
  out.resize(n);
  return out;
}

// Signature + IHDR declaring w x h, + a tiny IDAT: what a decompression bomb looks like up front.
std::vector<uint8_t> png_header_only(uint32_t w, uint32_t h) {
  std::vector<uint8_t> f = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  auto chunk = [&](const char* type, const std::vector<uint8_t>& d) {
    uint32_t n = static_cast<uint32_t>(d.size());
    for (int s = 24; s >= 0; s -= 8) f.push_back(static_cast<uint8_t>(n >> s));
    std::vector<uint8_t> td(type, type + 4);
    td.insert(td.end(), d.begin(), d.end());
    f.insert(f.end(), td.begin(), td.end());
    uint32_t crc = static_cast<uint32_t>(crc32(0, td.data(), static_cast<uInt>(td.size())));
    for (int s = 24; s >= 0; s -= 8) f.push_back(static_cast<uint8_t>(crc >> s));
  };
  std::vector<uint8_t> ihdr;
  for (uint32_t v : {w, h})
    for (int s = 24; s >= 0; s -= 8) ihdr.push_back(static_cast<uint8_t>(v >> s));
  ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});
  chunk("IHDR", ihdr);
  chunk("IDAT", {0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01});
  chunk("IEND", {});
  return f;
}

Image decode_bytes(const std::vector<uint8_t>& b, DecodeLimits limits = {}) {
  return decode_image(b.data(), b.size(), limits, "test.img");
}

void check_equal(const std::string& file, const std::string& ref) {
  INFO(file);
  Image out = decode_file("image/" + file);
  Image expect = ref_image(ref);
  REQUIRE(out.width == expect.width);
  REQUIRE(out.height == expect.height);
  Diff d = compare(out, expect);
  CHECK(d.max_abs == 0);
  CHECK(d.differing == 0);
}

}  // namespace

TEST_CASE("PNG colour types convert to RGB exactly as Pillow convert('RGB')") {
  check_equal("mode_P.png", "mode_P");        // palette (+ tRNS, ignored)
  check_equal("mode_L.png", "mode_L");        // gray replicated
  check_equal("mode_LA.png", "mode_LA");      // alpha dropped
  check_equal("mode_RGBA.png", "mode_RGBA");  // alpha dropped, no compositing
  check_equal("mode_1.png", "mode_1");        // 1-bit -> 0/255
  check_equal("mode_I16.png", "mode_I16");    // 16-bit gray clipped at 255
  check_equal("mode_RGB16.png", "mode_RGB16");  // 16-bit colour -> high byte
}

TEST_CASE("JPEG and WebP decode to Pillow's pixels") {
  check_equal("jpeg_rgb.jpg", "jpeg_rgb");
  check_equal("jpeg_gray.jpg", "jpeg_gray");
  check_equal("jpeg_cmyk.jpg", "jpeg_cmyk");
  check_equal("webp_lossy.webp", "webp_lossy");
  check_equal("webp_lossless.webp", "webp_lossless");
  check_equal("webp_alpha.webp", "webp_alpha");
}

TEST_CASE("EXIF orientation is applied like ImageOps.exif_transpose, or not when disabled") {
  check_equal("jpeg_exif6.jpg", "jpeg_exif6");
  DecodeLimits raw;
  raw.apply_exif_orientation = false;
  Image out = decode_file("image/jpeg_exif6.jpg", raw);
  Image expect = ref_image("jpeg_exif6_raw");
  REQUIRE(out.width == expect.width);
  CHECK(compare(out, expect).differing == 0);
}

TEST_CASE("all eight orientations (PNG eXIf) and WebP EXIF match exif_transpose") {
  for (int o = 1; o <= 8; ++o) check_equal("png_exif" + std::to_string(o) + ".png", "png_exif" + std::to_string(o));
  check_equal("webp_exif8.webp", "webp_exif8");
}

TEST_CASE("bad inputs give an omni::Error naming the input and the problem") {
  SECTION("zero bytes") {
    CHECK_THROWS_WITH(decode_bytes({}), Contains("test.img") && Contains("empty input (0 bytes)"));
  }
  SECTION("garbage / unknown format") {
    std::vector<uint8_t> junk(100, 0x42);
    CHECK_THROWS_WITH(decode_bytes(junk), Contains("test.img: unknown image format"));
    std::vector<uint8_t> gif = {'G', 'I', 'F', '8', '9', 'a', 0, 0};
    CHECK_THROWS_WITH(decode_bytes(gif), Contains("unsupported image format"));
  }
  SECTION("truncated PNG") {
    auto png = read_bytes(data_path("image/resize_src.png"));
    png.resize(png.size() / 2);
    CHECK_THROWS_WITH(decode_bytes(png), Contains("test.img: invalid or corrupt PNG") && Contains("truncated"));
    png.resize(20);
    CHECK_THROWS_WITH(decode_bytes(png), Contains("PNG file is truncated"));
  }
  SECTION("corrupt PNG (bad CRC in IHDR)") {
    auto png = read_bytes(data_path("image/resize_src.png"));
    png[29] ^= 0xFF;
    CHECK_THROWS_WITH(decode_bytes(png), Contains("test.img: invalid or corrupt PNG"));
  }
  SECTION("truncated and corrupt JPEG") {
    auto jpg = read_bytes(data_path("image/jpeg_rgb.jpg"));
    auto half = jpg;
    half.resize(jpg.size() / 2);
    CHECK_THROWS_WITH(decode_bytes(half), Contains("test.img: JPEG file is truncated"));
    auto head = jpg;
    head.resize(40);
    CHECK_THROWS_WITH(decode_bytes(head), Contains("test.img") && Contains("JPEG"));
    std::vector<uint8_t> bad = {0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x03, 0x00, 0x00};
    CHECK_THROWS_WITH(decode_bytes(bad), Contains("test.img") && Contains("JPEG"));
  }
  SECTION("truncated WebP") {
    auto webp = read_bytes(data_path("image/webp_lossy.webp"));
    webp.resize(webp.size() / 2);
    CHECK_THROWS_WITH(decode_bytes(webp), Contains("test.img: invalid or corrupt WebP"));
  }
  SECTION("decompression bomb refused from the header") {
    auto bomb = png_header_only(100000, 100000);
    CHECK(bomb.size() < 100);
    CHECK_THROWS_WITH(decode_bytes(bomb),
                      Contains("test.img: image is 100000x100000 = 10000000000 pixels, above the limit of 40000000"));
  }
  SECTION("1x1 and 100000x1 pictures are refused by min_side") {
    CHECK_THROWS_WITH(decode_bytes(encode_png(1, 1)),
                      Contains("test.img: image is 1x1 pixels; its smaller side 1 is below the minimum of 8"));
    CHECK_THROWS_WITH(decode_bytes(encode_png(100000, 1)),
                      Contains("image is 100000x1 pixels; its smaller side 1 is below the minimum"));
    DecodeLimits tiny;
    tiny.min_side = 1;
    CHECK(decode_bytes(encode_png(1, 1), tiny).width == 1);
  }
  SECTION("encoded size limit") {
    DecodeLimits small;
    small.max_encoded_bytes = 100;
    auto png = read_bytes(data_path("image/resize_src.png"));
    CHECK_THROWS_WITH(decode_bytes(png, small), Contains("above the limit of 100 bytes"));
  }
  SECTION("pixel limit is configurable") {
    DecodeLimits small;
    small.max_pixels = 100;
    CHECK_THROWS_WITH(decode_bytes(encode_png(20, 10), small), Contains("200 pixels, above the limit of 100"));
  }
  SECTION("missing file") {
    CHECK_THROWS_WITH(load_image_file("/nonexistent/x.png", {}), Contains("/nonexistent/x.png: cannot open"));
  }
}
