// MiniCPM-V 4.5's video path in the resampler (temporal table, frame-group cross-attention)
// against tests/data/minicpmv45-video, written by tools/minicpmv45_video_reference.py from the
// released resampler code with the resampler.* weights of tests/data/minicpmv45-tiny and fixed
// random tower outputs (frames.npy).
#include <catch2/catch.hpp>

#include <algorithm>

#include "checkpoint/checkpoint.h"
#include "kernels/device.h"
#include "model/resampler.h"
#include "model/weight_loader.h"
#include "util/error.h"
#include "util/golden.h"
#include "util/npy.h"

using namespace omni;

namespace {

// Float32 rounding alone moves the reference by 4.6e-7 (float32 vs float64 in the tool, noted in
// groups.json); 1e-5 leaves room for another summation order and is still 6000× below the
// nearest wrong variant the tool computes (no temporal term: 6e-2 on group 0).
constexpr double kOutputTol = 1e-5;
// The table: both sides round the same float32 steps; what may differ is the last bit of a
// sin/cos. A float64 table is 9e-6 off at id 1234 and 1e-3 at 123456.
constexpr double kTableTol = 1e-6;

std::string dir() { return test::data("minicpmv45-video"); }

struct Fixture {
  std::shared_ptr<kernels::Device> dev = kernels::make_device(kernels::DeviceId::parse("cpu:0"));
  Checkpoint ckpt{test::data("minicpmv45-tiny")};
  WeightLoader loader{ckpt};
  int D = ckpt.config().at("hidden_size").get<int>();
  int kv = ckpt.config().at("vision_config").at("hidden_size").get<int>();
  int nq = ckpt.config().at("query_num").get<int>();
  Resampler resampler{loader, D, kv, nq, D / 128, "resampler.", dev};   // heads as in chat_model.cpp

  kernels::Tensor tensor(const std::vector<float>& host, int64_t rows) const {
    REQUIRE(host.size() == size_t(rows * kv));
    return kernels::Tensor::from_host(dev, dev->compute_dtype(), {rows, kv}, host.data());
  }
};

std::vector<float> slice(const std::vector<float>& v, size_t width, size_t first, size_t count = 1) {
  return std::vector<float>(v.begin() + long(first * width), v.begin() + long((first + count) * width));
}

}  // namespace

TEST_CASE("MiniCPM-V 4.5 temporal table rows match the released float32 sin-cos table", "[resampler45]") {
  const std::vector<int32_t> ids = read_npy(dir() + "/table_ids.npy").as_int32();
  NpyArray rows = read_npy(dir() + "/table_rows.npy");
  REQUIRE(rows.shape.size() == 2);
  const int D = int(rows.shape[1]);
  REQUIRE(rows.shape[0] == int64_t(ids.size()));
  const std::vector<float> want = rows.as_float(), got = resampler_temporal_embed(D, ids);
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    const double err = test::rel_error(slice(got, size_t(D), i), slice(want, size_t(D), i));
    INFO("id " << ids[i] << " relative error " << err);
    CHECK(err <= kTableTol);
  }
  // Id 0: the sin half is 0, the cos half 1; an id < 0 (a still picture) is a zero row.
  const std::vector<float> r = resampler_temporal_embed(8, {0, -1, -7});
  CHECK(r == std::vector<float>{0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
}

TEST_CASE("MiniCPM-V 4.5 forward_frames matches the released batch_infer resampler", "[resampler45]") {
  Fixture f;
  nlohmann::json meta = Checkpoint::read_json(dir() + "/groups.json");
  const int th = meta.at("tgt_hw")[0].get<int>(), tw = meta.at("tgt_hw")[1].get<int>();
  const auto groups = meta.at("groups").get<std::vector<std::vector<int32_t>>>();
  CHECK(meta.at("output_tolerance").get<double>() == kOutputTol);   // the tool asserted against it
  const size_t L = size_t(th * tw), out_w = size_t(f.nq) * size_t(f.D);

  NpyArray frames = read_npy(dir() + "/frames.npy"), outputs = read_npy(dir() + "/outputs.npy");
  REQUIRE(frames.shape == std::vector<int64_t>{frames.shape[0], int64_t(L), f.kv});
  REQUIRE(outputs.shape == std::vector<int64_t>{int64_t(groups.size()), f.nq, f.D});
  const std::vector<float> x = frames.as_float(), want = outputs.as_float();

  size_t first = 0;
  std::vector<std::vector<float>> got;
  for (size_t g = 0; g < groups.size(); ++g) {
    std::vector<kernels::Tensor> xs;
    for (size_t i = 0; i < groups[g].size(); ++i) xs.push_back(f.tensor(slice(x, L * size_t(f.kv), first + i), int64_t(L)));
    first += groups[g].size();
    kernels::Tensor y = f.resampler.forward_frames(xs, th, tw, groups[g]);
    REQUIRE(y.shape() == std::vector<int64_t>{f.nq, f.D});
    got.push_back(y.to_host());
    const double err = test::rel_error(got.back(), slice(want, out_w, g));
    INFO("group " << g << " (" << groups[g].size() << " frames) relative error " << err);
    CHECK(err <= kOutputTol);
  }
  REQUIRE(first == size_t(frames.shape[0]));

  // The goldens tell the plausible mistakes apart (group 0, ids [0, 3, 7]): the temporal term
  // on the values too, none at all, keys and values flattened in different orders, one
  // attention per frame averaged, the ids given to the frames in reverse, cos half first.
  NpyArray wrong = read_npy(dir() + "/wrong_variants.npy");
  const auto names = meta.at("wrong_variants").get<std::vector<std::string>>();
  REQUIRE(wrong.shape == std::vector<int64_t>{int64_t(names.size()), f.nq, f.D});
  const std::vector<float> w = wrong.as_float();
  for (size_t v = 0; v < names.size(); ++v) {
    const double err = test::rel_error(got[0], slice(w, out_w, v));
    INFO(names[v] << ": distance " << err);
    CHECK(err >= 100 * kOutputTol);
  }
}

TEST_CASE("MiniCPM-V 4.5 one-frame group of a still picture is forward bit for bit", "[resampler45]") {
  Fixture f;
  std::vector<float> host(size_t(6 * f.kv));
  for (size_t i = 0; i < host.size(); ++i) host[i] = float((i * 37) % 101) / 50.0f - 1.0f;
  kernels::Tensor x = f.tensor(host, 6);
  const std::vector<float> still = f.resampler.forward(x, 2, 3).to_host();
  CHECK(f.resampler.forward_frames({x}, 2, 3, {-1}).to_host() == still);
  CHECK(f.resampler.forward_frames({x}, 3, 2, {-3}).to_host() == f.resampler.forward(x, 3, 2).to_host());
  // One frame with an id: the temporal row shifts every key's score for a query by the same
  // amount, which softmax cancels, so only rounding differs.
  CHECK(test::rel_error(f.resampler.forward_frames({x}, 2, 3, {5}).to_host(), still) <= kOutputTol);
  // Two different frames: the ids matter. (Two equal frames would not tell: each key's pair of
  // shifts factors out of the softmax in the same way.)
  std::reverse(host.begin(), host.end());
  kernels::Tensor x2 = f.tensor(host, 6);
  CHECK(test::rel_error(f.resampler.forward_frames({x, x2}, 2, 3, {0, 40}).to_host(),
                        f.resampler.forward_frames({x, x2}, 2, 3, {-1, -1}).to_host()) >= 100 * kOutputTol);
}

TEST_CASE("MiniCPM-V 4.5 forward_frames and the temporal table reject malformed input", "[resampler45]") {
  Fixture f;
  kernels::Tensor x = f.tensor(std::vector<float>(size_t(6 * f.kv), 0.25f), 6);
  kernels::Tensor x4 = f.tensor(std::vector<float>(size_t(4 * f.kv), 0.25f), 4);
  CHECK_THROWS_WITH(f.resampler.forward_frames({}, 2, 3, {}), Catch::Contains("no frames"));
  CHECK_THROWS_WITH(f.resampler.forward_frames({x, x}, 2, 3, {1}), Catch::Contains("2 frames has 1 temporal ids"));
  CHECK_THROWS_WITH(f.resampler.forward_frames({x, x4}, 2, 3, {1, 2}), Catch::Contains("(frame 1) does not match"));
  CHECK_THROWS_WITH(f.resampler.forward_frames({x}, 0, 3, {1}), Catch::Contains("bad patch grid"));
  CHECK_THROWS_WITH(f.resampler.forward_frames({x, kernels::Tensor()}, 2, 3, {1, 2}), Catch::Contains("empty"));
  CHECK_THROWS_WITH(f.resampler.forward_frames({x}, 2, 3, {kMaxTemporalId + 1}), Catch::Contains("temporal id"));
  CHECK_NOTHROW(f.resampler.forward_frames({x}, 2, 3, {kMaxTemporalId}));
  CHECK_THROWS_WITH(resampler_temporal_embed(255, {1}), Catch::Contains("not even"));
  CHECK_THROWS_WITH(resampler_temporal_embed(256, {3, kMaxTemporalId + 1}), Catch::Contains("beyond"));
  CHECK(resampler_temporal_embed(256, {}).empty());
}
