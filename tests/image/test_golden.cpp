// The whole image path (decode -> slice -> normalise) against the HF MiniCPM-V 2.6 processor
// goldens of tests/data/minicpmv26-tiny (scale_resolution 112), and the placeholder string.
#include <catch2/catch.hpp>

#include <cmath>

#include "helpers.h"
#include "image/normalize.h"
#include "image/placeholder.h"
#include "util/npy.h"

using namespace omni::image;
using namespace omni::image::test;

namespace {

void check_case(const std::string& dir) {
  const PreprocessorConfig cfg = load_preprocessor_config(data_path("minicpmv26-tiny/preprocessor_config.json"));
  REQUIRE(cfg.slice.scale_resolution == 112);
  Image img = load_image_file(data_path("minicpmv26-tiny/" + dir + "/image.png"), DecodeLimits{});
  SlicedImage s = slice_image(img, cfg.slice);

  auto golden = nlohmann::json::parse(read_bytes(data_path("minicpmv26-tiny/" + dir + "/golden_slices.json")));
  if (golden.at("grid").is_null()) {
    CHECK_FALSE(s.grid.has_value());
  } else {
    REQUIRE(s.grid.has_value());
    CHECK(s.grid->first == golden["grid"][0].get<int>());
    CHECK(s.grid->second == golden["grid"][1].get<int>());
  }
  REQUIRE(s.pieces.size() == golden.at("sizes_wh").size());

  size_t total = 0, exact = 0;
  float max_err = 0;
  for (size_t i = 0; i < s.pieces.size(); ++i) {
    const Image& p = s.pieces[i];
    CHECK(p.width == golden["sizes_wh"][i][0].get<int>());
    CHECK(p.height == golden["sizes_wh"][i][1].get<int>());
    CHECK(p.height / cfg.slice.patch_size == golden["tgt_sizes_hw"][i][0].get<int>());
    CHECK(p.width / cfg.slice.patch_size == golden["tgt_sizes_hw"][i][1].get<int>());
    omni::NpyArray ref = omni::read_npy(data_path("minicpmv26-tiny/" + dir + "/golden_pixels_" + std::to_string(i) + ".npy"));
    REQUIRE(ref.shape == std::vector<int64_t>{3, p.height, p.width});
    std::vector<float> want = ref.as_float();
    std::vector<float> got = normalize_chw(p, cfg.norm_mean, cfg.norm_std);
    REQUIRE(got.size() == want.size());
    for (size_t k = 0; k < got.size(); ++k) {
      float e = std::fabs(got[k] - want[k]);
      max_err = std::max(max_err, e);
      exact += e == 0.0f;
    }
    total += got.size();
  }
  INFO(dir << ": max error " << max_err << ", exact " << exact << " / " << total);
  CHECK(max_err <= 2.0f / 255.0f + 1e-6f);
  CHECK(double(exact) >= 0.999 * double(total));
  WARN(dir << ": max |error| " << max_err << ", exactly equal " << exact << " / " << total);
}

}  // namespace

TEST_CASE("golden case_small: not sliced, pixels match the HF processor") { check_case("case_small"); }
TEST_CASE("golden case_wide: 3x2 grid, pixels match the HF processor") { check_case("case_wide"); }

TEST_CASE("normalize_chw is (v/255 - mean)/std in CHW order") {
  Image img{2, 1, {0, 128, 255, 10, 20, 30}};
  auto v = normalize_chw(img, {0.5f, 0.5f, 0.5f}, {0.5f, 0.5f, 0.5f});
  REQUIRE(v.size() == 6);
  CHECK(v[0] == -1.0f);                          // R of pixel 0
  CHECK(v[1] == (10.0f / 255.0f - 0.5f) / 0.5f);  // R of pixel 1
  CHECK(v[2] == (128.0f / 255.0f - 0.5f) / 0.5f);  // G plane starts at H*W
  CHECK(v[4] == 1.0f);
}

TEST_CASE("placeholder string follows spec 2.7") {
  PlaceholderTokens t;
  std::string u2 = "<unk><unk>";
  CHECK(image_placeholder(0, std::nullopt, 2, true, t) == "<image_id>0</image_id><image>" + u2 + "</image>");
  CHECK(image_placeholder(3, std::nullopt, 2, false, t) == "<image>" + u2 + "</image>");
  const std::string sl = "<slice>" + u2 + "</slice>";
  CHECK(image_placeholder(1, std::make_pair(3, 2), 2, true, t) ==
        "<image_id>1</image_id><image>" + u2 + "</image>" + sl + sl + sl + "\n" + sl + sl + sl);
  SlicedImage s;
  s.grid = std::make_pair(1, 3);
  CHECK(image_placeholder(0, s, 1, false, t) ==
        "<image><unk></image><slice><unk></slice>\n<slice><unk></slice>\n<slice><unk></slice>");
  const PreprocessorConfig cfg = load_preprocessor_config(data_path("minicpmv26-tiny/preprocessor_config.json"));
  CHECK(cfg.image_feature_size == 16);
  CHECK(cfg.use_image_id);
  CHECK(cfg.tokens.unk == "<unk>");
}
