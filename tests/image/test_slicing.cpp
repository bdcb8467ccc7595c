// Slicing arithmetic against values derived by hand from image_processing_minicpmv.py
// (spec 2.6.3) and against the Pillow-made slices of tests/data/image.
#include <catch2/catch.hpp>

#include "helpers.h"
#include "image/slicing.h"

using namespace omni::image;
using Pair = std::pair<int, int>;

TEST_CASE("ensure_divide rounds half to even like Python round()") {
  CHECK(ensure_divide(35, 14) == 28);   // 2.5 -> 2 (std::round would give 3 -> 42)
  CHECK(ensure_divide(49, 14) == 56);   // 3.5 -> 4
  CHECK(ensure_divide(21, 14) == 28);   // 1.5 -> 2
  CHECK(ensure_divide(7, 14) == 14);    // 0.5 -> 0 -> max(0, 14)
  CHECK(ensure_divide(516, 14) == 518);
  CHECK(ensure_divide(387, 14) == 392);
  CHECK(ensure_divide(1025, 2) == 1024);  // 512.5 -> 512
  CHECK(ensure_divide(1027, 2) == 1028);  // 513.5 -> 514
}

TEST_CASE("find_best_resize truncates like int()") {
  // 1024x768: r = 4/3, h' = int(448 / 1.1547) = 387, w' = int(387 * 4/3) = 516.
  CHECK(find_best_resize(1024, 768, 448, 14, false) == Pair{518, 392});
  CHECK(find_best_resize(448, 448, 448, 14, true) == Pair{448, 448});
  CHECK(find_best_resize(100, 100, 448, 14, false) == Pair{98, 98});  // small, no upscale
  CHECK(find_best_resize(100, 100, 448, 14, true) == Pair{448, 448});
  // 300x200 upscaled: r = 1.5, h = int(448/1.2247) = 365, w = int(547.5) = 547 -> 546, 364.
  CHECK(find_best_resize(300, 200, 448, 14, true) == Pair{546, 364});
}

TEST_CASE("get_sliced_grid picks the closest aspect among n-1, n, n+1 pieces") {
  CHECK(get_sliced_grid(1024, 768, 9, 448) == Pair{2, 2});
  CHECK_FALSE(get_sliced_grid(448, 448, 9, 448).has_value());
  CHECK_FALSE(get_sliced_grid(449, 447, 9, 448).has_value());  // 200703 px: ceil(ratio) = 1
  CHECK(get_sliced_grid(449, 449, 9, 448) == Pair{1, 2});  // multiple 2: [1,2],[2,1],[1,3],[3,1]: first best
  CHECK(get_sliced_grid(2000, 500, 9, 448) == Pair{4, 1});
  CHECK(get_sliced_grid(4000, 3000, 9, 448) == Pair{3, 3});  // capped at max_slice_nums
  CHECK(get_sliced_grid(4000, 3000, 4, 448) == Pair{2, 2});
}

TEST_CASE("1024x768 at scale 448: worked example of spec 2.6.3") {
  CHECK(get_refine_size(1024, 768, {2, 2}, 448, 14, true) == Pair{1036, 784});
  std::optional<Pair> grid;
  auto sizes = slice_sizes(1024, 768, SliceConfig{}, &grid);
  REQUIRE(grid == Pair{2, 2});
  REQUIRE(sizes.size() == 5);
  for (auto& s : sizes) CHECK(s == Pair{518, 392});

  Image img{1024, 768, std::vector<uint8_t>(1024 * 768 * 3, 100)};
  SlicedImage sl = slice_image(img, SliceConfig{});
  REQUIRE(sl.pieces.size() == 5);
  for (auto& p : sl.pieces) {
    CHECK(p.width == 518);
    CHECK(p.height == 392);
  }
  CHECK(sl.pieces[3].rgb[0] == 100);  // a constant picture stays constant through resize
}

TEST_CASE("448x448 is not sliced, and slice_mode false keeps the picture") {
  std::optional<Pair> grid;
  auto sizes = slice_sizes(448, 448, SliceConfig{}, &grid);
  CHECK_FALSE(grid.has_value());
  CHECK(sizes == std::vector<Pair>{{448, 448}});
  SliceConfig off;
  off.slice_mode = false;
  CHECK(slice_sizes(300, 200, off) == std::vector<Pair>{{300, 200}});
  Image img{30, 20, std::vector<uint8_t>(30 * 20 * 3, 7)};
  SlicedImage s = slice_image(img, off);
  REQUIRE(s.pieces.size() == 1);
  CHECK(s.pieces[0].width == 30);
  CHECK_FALSE(s.grid.has_value());
}

TEST_CASE("slices of a 700x500 picture equal Pillow's, byte for byte") {
  using namespace omni::image::test;
  Image src = decode_file("image/slice_src.png");
  SlicedImage s = slice_image(src, SliceConfig{});
  auto g = refs().at("slice_grid");
  REQUIRE(s.grid == Pair{g[0].get<int>(), g[1].get<int>()});
  REQUIRE(s.pieces.size() == 1 + size_t(g[0].get<int>() * g[1].get<int>()));
  for (size_t i = 0; i < s.pieces.size(); ++i) {
    INFO("piece " << i);
    Image ref = decode_file("image/slice_piece_" + std::to_string(i) + ".png");
    REQUIRE(s.pieces[i].width == ref.width);
    REQUIRE(s.pieces[i].height == ref.height);
    Diff d = compare(s.pieces[i], ref);
    CHECK(d.max_abs == 0);
    CHECK(d.differing == 0);
  }
}

TEST_CASE("crop refuses boxes outside the picture") {
  Image img{4, 3, std::vector<uint8_t>(4 * 3 * 3, 1)};
  CHECK(crop(img, 1, 1, 3, 2).width == 3);
  CHECK_THROWS_WITH(crop(img, 2, 0, 3, 1), Catch::Contains("outside a 4x3 image"));
}
