// `omnid dump --video` and `omnid run --video`: the dump writes what was sampled
// (frames.json) beside the prompt and embeddings; a bad file is refused with its name.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "cli/run_command.h"
#include "util/golden.h"
#include "util/npy.h"
#include "video/clip_writer.h"

using omni::test::bin;
using omni::test::run_command;
namespace fs = std::filesystem;

namespace {

fs::path write_file(const fs::path& p, const std::vector<uint8_t>& bytes) {
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  return p;
}

}  // namespace

TEST_CASE("omnid dump --video writes frames.json with the sampled frames, and run --video answers", "[cli]") {
  const fs::path dir = fs::temp_directory_path() / ("omni-video-cli-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  omni::video::test::ClipSpec spec;
  spec.frames = 30;   // 3 s at 10 fps: frames 0, 10, 20
  spec.fps_num = 10;
  const fs::path clip = write_file(dir / "clip.mkv", omni::video::test::write_clip(spec));
  const std::string model = omni::test::data("minicpmv26-tiny");
  auto r = run_command(bin("omnid") + " dump --model " + model + " --video " + clip.string() +
                       " --text 'What happens?' --out " + (dir / "d").string());
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  std::ifstream in(dir / "d" / "frames.json");
  REQUIRE(in);
  const auto frames = nlohmann::json::parse(in);
  REQUIRE(frames.size() == 1);
  CHECK(frames[0]["indices"] == nlohmann::json::array({0, 10, 20}));
  CHECK(frames[0]["frame_count"] == 30);
  CHECK(frames[0]["fps"] == 10.0);
  CHECK(frames[0]["codec"] == "ffv1");
  CHECK(frames[0]["max_slice_nums"] == 2);
  CHECK(omni::read_npy((dir / "d" / "vision_embeds.npy").string()).shape == std::vector<int64_t>{3, 16, 256});
  CHECK(fs::exists(dir / "d" / "logits.npy"));

  r = run_command(bin("omnid") + " run --model " + model + " --video " + clip.string() +
                  " --video-max-frames 2 --max-tokens 4 --greedy 'What happens?'");
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK_FALSE(r.out.empty());

  // A file that is no video: refused with its name (after the load: decoding is the check).
  const fs::path junk = write_file(dir / "junk.mp4", std::vector<uint8_t>(2048, 0x5a));
  r = run_command(bin("omnid") + " run --model " + model + " --video " + junk.string() + " 'What?'");
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.err, Catch::Contains(junk.string()));
  // A missing file and a bad setting are usage errors before the load (exit 2).
  r = run_command(bin("omnid") + " run --model " + model + " --video " + (dir / "none.mp4").string() + " 'What?'");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("--video"));
  r = run_command(bin("omnid") + " run --model " + model + " --video " + clip.string() + " --video-max-packing 9 'What?'");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("video_max_packing"));
  fs::remove_all(dir);
}

// Writes the fuzzer's seed clips (tests/data/video/fuzz/); hidden, run by hand:
//   build/bin/test_video "[.write-fuzz-seeds]"
TEST_CASE("write the video fuzzer's seed clips", "[.write-fuzz-seeds]") {
  using omni::video::test::ClipSpec;
  const fs::path dir = fs::path(OMNI_TEST_DATA) / "video" / "fuzz";
  fs::create_directories(dir);
  ClipSpec mkv;
  mkv.width = 16;
  mkv.height = 16;
  mkv.frames = 4;
  write_file(dir / "ffv1.mkv", omni::video::test::write_clip(mkv));
  ClipSpec avi = mkv;
  avi.container = "avi";
  avi.codec = "rawvideo";
  avi.pix_fmt = "bgr24";
  write_file(dir / "raw.avi", omni::video::test::write_clip(avi));
  ClipSpec mp4 = mkv;
  mp4.container = "mp4";
  mp4.codec = "mpeg4";
  mp4.pix_fmt = "yuv420p";
  mp4.max_b_frames = 2;
  mp4.frames = 6;
  write_file(dir / "mpeg4_bframes.mp4", omni::video::test::write_clip(mp4));
}
