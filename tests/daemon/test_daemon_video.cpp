// Videos through the daemon: a clip sent as a sealed memfd is answered as the in-process
// engine answers it, and every kind of bad video gets its own error naming the video while
// the daemon serves on.
#include <catch2/catch.hpp>

#include "daemon_process.h"
#include "kernels/device.h"
#include "model/answer.h"
#include "sdk/client.h"
#include "util/golden.h"
#include "video/clip_writer.h"

using namespace omni;
using Catch::Matchers::Contains;

namespace {

struct BadVideo {
  const char* what;
  std::vector<uint8_t> bytes;
  const char* says;   // part of the error message
};

std::vector<BadVideo> bad_videos() {
  using video::test::ClipSpec;
  using video::test::write_clip;
  std::vector<BadVideo> out;
  ClipSpec three_s;   // 3 s at 10 fps: frames 0, 10, 20 sampled
  three_s.frames = 30;
  three_s.fps_num = 10;
  auto cut = write_clip(three_s);
  cut.resize(cut.size() / 2);
  out.push_back({"truncated", std::move(cut), "truncated"});
  ClipSpec none;
  none.frames = 0;
  none.container = "avi";
  out.push_back({"zero frames", write_clip(none), "no frames"});
  ClipSpec big;
  big.width = big.height = 256;
  big.frames = 2;
  auto huge = write_clip(big);
  video::test::patch_once(huge, {0xB0, 0x82, 0x01, 0x00}, {0xB0, 0x82, 0x4E, 0x20});   // PixelWidth 20000
  video::test::patch_once(huge, {0xBA, 0x82, 0x01, 0x00}, {0xBA, 0x82, 0x4E, 0x20});   // PixelHeight 20000
  out.push_back({"20000x20000 header", std::move(huge), "20000x20000"});
  ClipSpec slow;
  slow.frames = 3;
  slow.fps_den = 100000;
  slow.fps_num = 1;
  slow.width = slow.height = 16;
  out.push_back({"absurd duration", write_clip(slow), "above the limit of 10800 s"});
  ClipSpec mpeg1;
  mpeg1.codec = "mpeg1video";
  mpeg1.pix_fmt = "yuv420p";
  mpeg1.width = mpeg1.height = 32;
  out.push_back({"codec not allowed", write_clip(mpeg1), "mpeg1video is not allowed"});
  std::vector<uint8_t> garbage(4096);
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = uint8_t(i * 2654435761u >> 13);
  out.push_back({"garbage", std::move(garbage), "video"});
  return out;
}

}  // namespace

TEST_CASE("a video through the daemon is answered as the engine answers it, bad ones get their error", "[daemon]") {
  test::DaemonProcess d;
  video::test::ClipSpec spec;
  spec.width = 64;
  spec.height = 48;
  spec.frames = 30;
  spec.fps_num = 10;
  const std::vector<uint8_t> clip = video::test::write_clip(spec);
  std::string expected;
  {
    auto model = ChatModel::load(test::data("minicpmv26-tiny"), [](const LlmConfig& c) {
      return DecoderPlacement::single(kernels::make_device({}), c.n_layers);
    });
    ImageInput in = ImageInput::from_bytes("clip", clip);
    in.video = true;
    AnswerOptions o;
    o.sampling.greedy = true;
    o.max_tokens = 8;
    expected = answer(*model, {in}, "What happens?", o).text;
  }
  auto c = test::connected(d.socket());
  auto ask = [&](const std::vector<uint8_t>& bytes, std::string* text) {
    sdk::GenerateRequest r;
    r.prompt = "What happens?";
    r.max_tokens = 8;
    r.sampling.greedy = true;
    r.images.push_back(sdk::Image::video_from_bytes(bytes));
    return c.generate(r, [&](const ipc::Token& t) {
      if (text) *text += t.text;
    });
  };
  for (const BadVideo& b : bad_videos()) {
    INFO(b.what);
    const ipc::Done done = ask(b.bytes, nullptr);
    CHECK(done.reason == ipc::FinishReason::error);
    CHECK(done.error_code == ipc::ErrorCode::bad_image);
    CHECK_THAT(done.error_message, Contains("video 0") && Contains(b.says));
  }
  std::string got;
  const ipc::Done ok = ask(clip, &got);
  CHECK(ok.reason != ipc::FinishReason::error);
  CHECK(got == expected);
  CHECK(ok.image_tokens == 3 * 16);   // frames 0, 10, 20 of 64x48: one piece of 16 queries each
  CHECK(d.alive());
  CHECK(c.status().active_requests == 0);
}
