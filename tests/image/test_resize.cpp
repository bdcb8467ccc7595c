// resize_bicubic against Pillow 9.4 Image.resize(BICUBIC) outputs (tools/gen_image_refs.py).
#include <catch2/catch.hpp>

#include "helpers.h"
#include "image/resize.h"
#include "util/error.h"

using namespace omni::image;
using namespace omni::image::test;

TEST_CASE("resize_bicubic equals Pillow exactly (down, up, mixed, one axis, 1x1)") {
  Image src = decode_file("image/resize_src.png");
  REQUIRE(src.width == 37);
  REQUIRE(src.height == 23);
  for (const char* name : {"resize_16x11", "resize_90x50", "resize_50x9", "resize_37x40",
                           "resize_13x23", "resize_5x3", "resize_111x7", "resize_1x1"}) {
    INFO(name);
    Image ref = ref_image(name);
    Image out = resize_bicubic(src, ref.width, ref.height);
    REQUIRE(out.width == ref.width);
    REQUIRE(out.height == ref.height);
    REQUIRE(out.rgb.size() == ref.rgb.size());
    Diff d = compare(out, ref);
    CHECK(d.max_abs == 0);
    CHECK(d.differing == 0);
  }
}

TEST_CASE("resize to the same size is a copy, and constant pictures stay constant") {
  Image img{5, 4, std::vector<uint8_t>(5 * 4 * 3, 200)};
  CHECK(resize_bicubic(img, 5, 4).rgb == img.rgb);
  Image up = resize_bicubic(img, 17, 9);
  for (uint8_t v : up.rgb) CHECK(v == 200);
  CHECK_THROWS_AS(resize_bicubic(img, 0, 4), omni::Error);
}
