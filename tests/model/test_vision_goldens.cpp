// The MiniCPM-V 2.6 vision tower (SigLIP NaViT) and resampler against goldens computed with
// transformers' Idefics2VisionTransformer (navit-siglip-tiny) and the MiniCPM-V 2.6 remote
// code (minicpmv26-tiny: vision_embeds per image piece).
#include <catch2/catch.hpp>
#include <cmath>

#include "checkpoint/checkpoint.h"
#include "kernels/device.h"
#include "model/resampler.h"
#include "model/vision_config.h"
#include "model/vision_tower.h"
#include "model/weight_loader.h"
#include "util/error.h"
#include "util/golden.h"
#include "util/npy.h"

using namespace omni;

namespace {

std::shared_ptr<kernels::Device> cpu() { return kernels::make_device(kernels::DeviceId::parse("cpu:0")); }

// Rows [first, first + count) of a row-major float matrix with `width` columns.
std::vector<float> rows_of(const std::vector<float>& m, int64_t width, int64_t first, int64_t count) {
  return std::vector<float>(m.begin() + first * width, m.begin() + (first + count) * width);
}

}  // namespace

TEST_CASE("vision config parses and rejects bad fields", "[vision]") {
  nlohmann::json c = {{"hidden_size", 64},        {"intermediate_size", 128}, {"num_attention_heads", 4},
                      {"num_hidden_layers", 2},   {"patch_size", 14},         {"image_size", 980}};
  VisionConfig v = VisionConfig::from_json(c, "cfg");
  CHECK(v.layer_norm_eps == Approx(1e-6f));
  CHECK(v.patches_per_side() == 70);
  CHECK(v.head_dim() == 16);

  auto bad = c;
  bad["hidden_act"] = "gelu";
  CHECK_THROWS_WITH(VisionConfig::from_json(bad, "x/config.json"), Catch::Contains("x/config.json") && Catch::Contains("hidden_act"));
  bad = c;
  bad.erase("patch_size");
  CHECK_THROWS_WITH(VisionConfig::from_json(bad, "x/config.json"), Catch::Contains("'patch_size'"));
  bad = c;
  bad["num_attention_heads"] = 5;
  CHECK_THROWS_WITH(VisionConfig::from_json(bad, "x/config.json"), Catch::Contains("num_attention_heads"));
}

TEST_CASE("NaViT position ids follow the bucketed fractional coordinates", "[vision]") {
  // n = 70 (2.6): boundaries k/70; ids agree with floor(70·i/n) for these grids.
  for (int n : {1, 5, 6, 10, 14, 23, 32, 35, 64, 70}) {
    std::vector<int32_t> ids = navit_position_ids(1, n, 70);
    REQUIRE(ids.size() == size_t(n));
    for (int i = 0; i < n; ++i) CHECK(ids[size_t(i)] == int32_t(std::floor(70.0 * i / n + 1e-9)));
  }
  std::vector<int32_t> ids = navit_position_ids(2, 3, 70);
  CHECK(ids == std::vector<int32_t>{0, 23, 46, 35 * 70 + 0, 35 * 70 + 23, 35 * 70 + 46});
}

TEST_CASE("navit-siglip-tiny tower matches transformers Idefics2VisionTransformer", "[vision]") {
  const std::string dir = test::data("navit-siglip-tiny");
  Checkpoint ckpt(dir);
  VisionConfig cfg = VisionConfig::from_json(ckpt.config(), dir + "/config.json");
  WeightLoader loader(ckpt);
  auto dev = cpu();
  VisionTower tower(loader, cfg, "", dev);

  NpyArray px = read_npy(dir + "/golden_pixel_values.npy");
  NpyArray mask = read_npy(dir + "/golden_patch_mask.npy");
  NpyArray want = read_npy(dir + "/golden_last_hidden_state.npy");
  REQUIRE(px.shape == std::vector<int64_t>{2, 3, 112, 112});
  REQUIRE(mask.shape == std::vector<int64_t>{2, 8, 8});
  const std::vector<float> pixels = px.as_float(), expect = want.as_float();
  const int64_t H = cfg.hidden, G = 8, S = 112, P = cfg.patch_size;

  for (int b = 0; b < 2; ++b) {
    // The valid patches form the top-left rows × cols rectangle of the 8×8 grid.
    int rows = 0, cols = 0;
    for (int r = 0; r < G; ++r) rows += mask.bytes[size_t(b * G * G + r * G)] ? 1 : 0;
    for (int c = 0; c < G; ++c) cols += mask.bytes[size_t(b * G * G + c)] ? 1 : 0;
    for (int r = 0; r < G; ++r)
      for (int c = 0; c < G; ++c) REQUIRE(bool(mask.bytes[size_t(b * G * G + r * G + c)]) == (r < rows && c < cols));
    INFO("image " << b << ": valid grid " << rows << "x" << cols);
    // The piece = the pixels under the valid patches.
    const int h = int(rows * P), w = int(cols * P);
    std::vector<float> piece(size_t(3 * h * w));
    for (int ch = 0; ch < 3; ++ch)
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
          piece[size_t((ch * h + y) * w + x)] = pixels[size_t(((b * 3 + ch) * S + y) * S + x)];
    std::vector<float> got = tower.encode(piece, h, w).to_host();
    REQUIRE(got.size() == size_t(rows * cols * H));
    std::vector<float> ref;
    for (int r = 0; r < rows; ++r) {
      std::vector<float> part = rows_of(expect, H, b * G * G + r * G, cols);
      ref.insert(ref.end(), part.begin(), part.end());
    }
    const double err = test::rel_error(got, ref);
    INFO("last_hidden_state relative error " << err);
    CHECK(err <= 1e-4);
  }
}

namespace {

void check_minicpmv_case(const std::string& name) {
  const std::string dir = test::data("minicpmv26-tiny");
  Checkpoint ckpt(dir);
  const auto& c = ckpt.config();
  VisionConfig vcfg = VisionConfig::from_json(c.at("vision_config"), dir + "/config.json: vision_config");
  const int D = c.at("hidden_size").get<int>(), nq = c.at("query_num").get<int>();
  WeightLoader loader(ckpt);
  auto dev = cpu();
  VisionTower tower(loader, vcfg, "vpm.", dev);
  Resampler resampler(loader, D, vcfg.hidden, nq, D / 128, "resampler.", dev);

  const std::string cdir = dir + "/" + name;
  nlohmann::json slices = Checkpoint::read_json(cdir + "/golden_slices.json");
  NpyArray want = read_npy(cdir + "/golden_vision_embeds.npy");
  const auto& sizes = slices.at("tgt_sizes_hw");
  REQUIRE(want.shape == std::vector<int64_t>{int64_t(sizes.size()), nq, D});
  const std::vector<float> expect = want.as_float();
  std::vector<float> all;
  for (size_t i = 0; i < sizes.size(); ++i) {
    NpyArray px = read_npy(cdir + "/golden_pixels_" + std::to_string(i) + ".npy");
    REQUIRE(px.shape.size() == 3);
    const int h = int(px.shape[1]), w = int(px.shape[2]);
    const int th = sizes[i][0].get<int>(), tw = sizes[i][1].get<int>();
    REQUIRE(h == th * vcfg.patch_size);
    REQUIRE(w == tw * vcfg.patch_size);
    kernels::Tensor feats = tower.encode(px.as_float(), h, w);
    std::vector<float> got = resampler.forward(feats, th, tw).to_host();
    const double err = test::rel_error(got, rows_of(expect, int64_t(nq) * D, int64_t(i), 1));
    INFO(name << " piece " << i << " (" << th << "x" << tw << ") relative error " << err);
    CHECK(err <= 1e-3);
    all.insert(all.end(), got.begin(), got.end());
  }
  const double err = test::rel_error(all, expect);
  INFO(name << " vision_embeds relative error " << err);
  CHECK(err <= 1e-3);
}

}  // namespace

TEST_CASE("minicpmv26-tiny vision embeds match the reference (overview only)", "[vision]") {
  check_minicpmv_case("case_small");
}

TEST_CASE("minicpmv26-tiny vision embeds match the reference (overview and 3x2 slices)", "[vision]") {
  check_minicpmv_case("case_wide");
}

TEST_CASE("vision tower and resampler reject malformed inputs", "[vision]") {
  const std::string dir = test::data("minicpmv26-tiny");
  Checkpoint ckpt(dir);
  VisionConfig vcfg = VisionConfig::from_json(ckpt.config().at("vision_config"), "vision_config");
  WeightLoader loader(ckpt);
  auto dev = cpu();
  VisionTower tower(loader, vcfg, "vpm.", dev);
  Resampler resampler(loader, 256, vcfg.hidden, 16, 2, "resampler.", dev);

  CHECK_THROWS_AS(tower.encode(std::vector<float>(3 * 28 * 28), 28, 42), Error);   // size mismatch
  CHECK_THROWS_WITH(tower.encode(std::vector<float>(3 * 28 * 28), 28, 42), Catch::Contains("pixel values"));
  CHECK_THROWS_WITH(tower.encode(std::vector<float>(3 * 20 * 28), 20, 28), Catch::Contains("patch size"));
  CHECK_THROWS_AS(tower.encode({}, 0, 0), Error);

  kernels::Tensor f = tower.encode(std::vector<float>(3 * 28 * 42, 0.1f), 28, 42);
  CHECK(f.shape() == std::vector<int64_t>{6, vcfg.hidden});
  CHECK_THROWS_WITH(resampler.forward(f, 3, 3), Catch::Contains("does not match"));
  CHECK(resampler.forward(f, 2, 3).shape() == std::vector<int64_t>{16, 256});

  // Wrong dimensions reach the loader's shape check, which names the tensor.
  WeightLoader l2(ckpt);
  CHECK_THROWS_WITH(Resampler(l2, 256, 32, 16, 2, "resampler.", dev), Catch::Contains("resampler.kv_proj.weight"));
  CHECK_THROWS_WITH(Resampler(l2, 256, 64, 8, 2, "resampler.", dev), Catch::Contains("resampler.query"));
  VisionConfig wrong = vcfg;
  wrong.image_size = 112;   // 8×8 position table instead of 10×10
  CHECK_THROWS_WITH(VisionTower(l2, wrong, "vpm.", dev), Catch::Contains("position_embedding"));
}
