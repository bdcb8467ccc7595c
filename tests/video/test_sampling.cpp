// The frame-sampling rules against the released Python code's own answers:
// tests/data/video/sampling.json, written by tools/video_sampling_reference.py (the released
// encode_video functions with decord's frame count and fps as inputs; the 4.5 ties checked there
// against scipy's cKDTree).
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <limits>
#include <sstream>

#include "video/sampling.h"

using omni::video::FrameSample;
using omni::video::sample_frames_v26;
using omni::video::sample_frames_v45;

namespace {

nlohmann::json load_cases() {
  std::ifstream f(std::string(OMNI_TEST_DATA) + "/video/sampling.json");
  REQUIRE(f.good());
  return nlohmann::json::parse(f)["cases"];
}

std::string describe(const nlohmann::json& c) {
  std::ostringstream o;
  o << c["model"].get<std::string>() << " frames=" << c["frame_count"] << " fps=" << c["fps_num"] << "/"
    << c["fps_den"];
  for (const char* k : {"choose_fps", "max_frames", "max_packing", "force_packing"})
    if (c.contains(k)) o << " " << k << "=" << c[k];
  return o.str();
}

}  // namespace

TEST_CASE("sampling every case of the released code's table is reproduced") {
  const nlohmann::json cases = load_cases();
  REQUIRE(cases.size() > 300);
  size_t v26 = 0, v45 = 0, repeats = 0, errors = 0;
  for (const auto& c : cases) {
    INFO(describe(c));
    const int64_t n = c["frame_count"];
    const double fps = c["fps_num"].get<double>() / c["fps_den"].get<double>();
    FrameSample s;
    if (c["model"] == "v26") {
      s = sample_frames_v26(n, fps, c.value("choose_fps", 1.0), c.value("max_frames", 64));
      CHECK(s.temporal_ids.empty());
      ++v26;
    } else {
      s = sample_frames_v45(n, fps, c.value("choose_fps", 3.0), c.value("max_frames", 180), c.value("max_packing", 3),
                            c.value("force_packing", 0));
      CHECK(s.temporal_ids == c["temporal_ids"].get<std::vector<int32_t>>());
      CHECK(s.packing == c["packing"].get<int>());
      ++v45;
    }
    const auto want = c["indices"].get<std::vector<int64_t>>();
    CHECK(s.indices == want);
    errors += !c["python_error"].is_null();
    for (size_t i = 1; i < want.size(); ++i) {
      REQUIRE(want[i] >= want[i - 1]);
      repeats += want[i] == want[i - 1];
    }
  }
  CHECK(v26 > 100);
  CHECK(v45 > 200);
  CHECK(errors > 0);   // the table covers the released code's failures (empty here)
  CHECK(repeats > 0);  // and clips shorter than the sample (repeated frames)
}

TEST_CASE("sampling 2.6 rounds fps half to even as Python does") {
  // round(2.5) == 2 in Python: every 2nd frame of a 2.5 fps clip, not every 3rd.
  const FrameSample s = sample_frames_v26(10, 2.5);
  CHECK(s.indices == std::vector<int64_t>{0, 2, 4, 6, 8});
  CHECK(sample_frames_v26(10, 0.5).indices.empty());  // round(0.5) == 0: range() would raise
}

TEST_CASE("sampling 4.5 of a 10 s 30 fps clip takes 30 frames at 3 fps with ids in 0.1 s") {
  const FrameSample s = sample_frames_v45(300, 30);
  REQUIRE(s.indices.size() == 30);
  CHECK(s.packing == 1);
  CHECK(s.indices.front() == 5);  // int(0 * 10 + 10 / 2)
  CHECK(s.temporal_ids.front() == 2);  // 5 / 30 = 0.1667 s -> nearest step 0.2
  CHECK(s.indices.back() == 295);
}

TEST_CASE("sampling 4.5 of a clip shorter than its sample repeats frames as the released code") {
  // 100 s at 1 fps: 300 frames sampled from 100, packing 2.
  const FrameSample s = sample_frames_v45(100, 1);
  REQUIRE(s.indices.size() == 300);
  CHECK(s.packing == 2);
  CHECK(s.indices[0] == 0);
  CHECK(s.indices[1] == 0);
  CHECK(s.indices[2] == 0);
  CHECK(s.indices[3] == 1);
}

TEST_CASE("sampling no frames or a bad rate give an empty sample") {
  CHECK(sample_frames_v26(0, 30).indices.empty());
  CHECK(sample_frames_v45(0, 30).indices.empty());
  CHECK(sample_frames_v45(1, 30).indices.empty());  // 1/30 s: round(3 * 0.033) == 0 frames
  CHECK(sample_frames_v26(100, 0).indices.empty());
  CHECK(sample_frames_v45(100, -1).indices.empty());
  CHECK(sample_frames_v45(100, std::numeric_limits<double>::infinity()).indices.empty());
  CHECK(sample_frames_v45(100, std::numeric_limits<double>::quiet_NaN()).indices.empty());
  CHECK(sample_frames_v45(40, 1e-5).indices.empty());  // 4e6 s: over the 10 million steps bound
}

TEST_CASE("sampling 4.5 force_packing overrides packing up to max_packing") {
  CHECK(sample_frames_v45(300, 30, 3, 180, 3, 2).packing == 2);
  CHECK(sample_frames_v45(300, 30, 3, 180, 3, 6).packing == 3);
}
