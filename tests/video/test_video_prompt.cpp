// A video through ChatModel: sampled as the release samples it, each frame (2.6) or frame
// group (4.5) a unit of the prompt, and for 2.6 the very prompt and embeddings of the same
// frames sent as pictures with the video settings (use_image_id off, max_slice_nums 2), as
// the released chat() is called for a video. Clips are FFV1 with RGB frames: decoding is exact.
#include <catch2/catch.hpp>

#include "image/placeholder.h"
#include "kernels/device.h"
#include "model/chat_model.h"
#include "model/video_frames.h"
#include "util/tiny_fixtures.h"
#include "video/clip_writer.h"
#include "video/sampling.h"

using namespace omni;
using Catch::Matchers::Contains;

namespace {

CausalLm::PlaceFn one_cpu() {
  return [](const LlmConfig& c) { return DecoderPlacement::single(kernels::make_device({}), c.n_layers); };
}

ImageInput video_input(std::vector<uint8_t> bytes, const std::string& name = "clip") {
  ImageInput in = ImageInput::from_bytes(name, std::move(bytes));
  in.video = true;
  return in;
}

ImageInput rgb_input(const image::Image& img, const std::string& name) {
  ImageInput in = ImageInput::from_bytes(name, img.rgb);
  in.rgb_width = img.width;
  in.rgb_height = img.height;
  return in;
}

std::vector<float> all_rows(const std::vector<std::shared_ptr<const VisionEmbeds>>& v) {
  std::vector<float> out;
  for (const auto& e : v) out.insert(out.end(), e->data.begin(), e->data.end());
  return out;
}

}  // namespace

TEST_CASE("2.6 video: the sampled frames' prompt and embeddings equal those frames sent as pictures") {
  auto model = ChatModel::load(test::data("minicpmv26-tiny"), one_cpu());
  // 4 s at 10 fps, frames large enough to be sliced in 2 (3 pieces each with max_slice_nums 2).
  video::test::ClipSpec spec;
  spec.width = 160;
  spec.height = 96;
  spec.frames = 40;
  spec.fps_num = 10;
  const ChatPrompt v = model->prepare({video_input(video::test::write_clip(spec))}, "What happens?");
  REQUIRE(v.videos.size() == 1);
  const std::vector<int64_t> expected = {0, 10, 20, 30};   // every round(10 / 1)-th frame
  CHECK(v.videos[0].sample.indices == expected);
  CHECK(v.videos[0].info.frame_count == 40);
  REQUIRE(v.images.size() == expected.size());
  CHECK(v.images[0].sliced.pieces.size() == 3);

  std::vector<ImageInput> pictures;
  for (int64_t i : expected) pictures.push_back(rgb_input(video::test::pattern_frame(int(i), 160, 96), "frame"));
  ipc::PromptOptions as_video;
  as_video.use_image_id = false;
  as_video.max_slice_nums = 2;
  const ChatPrompt p = model->prepare(pictures, "What happens?", as_video);
  CHECK(v.text == p.text);
  CHECK(v.ids == p.ids);
  CHECK(v.bounds == p.bounds);
  const auto ve = all_rows(model->encode_images(v));
  const auto pe = all_rows(model->encode_images(p));
  REQUIRE(ve.size() == pe.size());
  CHECK(ve == pe);   // bit for bit: the same pixels through the same tower
  // A second ask about the same clip finds every frame in the vision cache.
  const size_t hits = model->vision_cache().hits();
  (void)model->encode_images(model->prepare({video_input(video::test::write_clip(spec))}, "Again?"));
  CHECK(model->vision_cache().hits() == hits + expected.size());
}

TEST_CASE("2.6 video: long clips are subsampled uniformly to video_max_frames and settings apply") {
  auto model = ChatModel::load(test::data("minicpmv26-tiny"), one_cpu());
  video::test::ClipSpec spec;
  spec.width = 32;
  spec.height = 24;
  spec.frames = 100;   // 100 s at 1 fps: 100 candidates, uniformly 64 of them
  spec.fps_num = 1;
  const ChatPrompt v = model->prepare({video_input(video::test::write_clip(spec))}, "?");
  REQUIRE(v.videos.size() == 1);
  CHECK(v.videos[0].sample.indices == video::sample_frames_v26(100, 1.0).indices);
  CHECK(v.images.size() == 64);
  ipc::PromptOptions o;
  o.video_max_frames = 10;
  o.video_fps = 0.5;
  const ChatPrompt w = model->prepare({video_input(video::test::write_clip(spec))}, "?", o);
  CHECK(w.videos[0].sample.indices == video::sample_frames_v26(100, 1.0, 0.5, 10).indices);
  CHECK(w.images.size() == 10);
}

TEST_CASE("4.5 video: frames grouped by packing share a placeholder and carry temporal ids") {
  auto model = ChatModel::load(test::data("minicpmv45-tiny"), one_cpu());
  video::test::ClipSpec spec;
  spec.width = 32;
  spec.height = 24;
  spec.frames = 24;   // 2 s at 12 fps, 3 frames a second: 6 frames
  spec.fps_num = 12;
  ipc::PromptOptions o;
  o.video_max_frames = 2;   // 3 * int(2 s) = 6 > 2 groups: packing ceil(2 * 3 / 2) = 3
  const ChatPrompt v = model->prepare({video_input(video::test::write_clip(spec))}, "What happens?", o);
  REQUIRE(v.videos.size() == 1);
  const video::FrameSample expect = video::sample_frames_v45(24, 12.0, 3, 2, 3);
  CHECK(v.videos[0].sample.indices == expect.indices);
  CHECK(v.videos[0].sample.temporal_ids == expect.temporal_ids);
  CHECK(expect.packing == 3);
  REQUIRE(expect.indices.size() == 6);
  REQUIRE(v.images.size() == 2);   // two groups of three frames
  for (size_t g = 0; g < 2; ++g) {
    CHECK(v.images[g].frames() == 3);
    CHECK(v.images[g].runs() == 1);
    CHECK(v.images[g].temporal_ids ==
          std::vector<int32_t>(expect.temporal_ids.begin() + long(3 * g), expect.temporal_ids.begin() + long(3 * g + 3)));
  }
  // Two placeholders joined by "\n" before the question (the processor's skip_image_idx).
  const auto& t = model->query_num();
  const std::string unk_run = [&] {
    std::string s;
    for (int i = 0; i < t; ++i) s += "<unk>";
    return s;
  }();
  CHECK_THAT(v.text, Contains("<image>" + unk_run + "</image>\n<image>" + unk_run + "</image>\nWhat happens?"));
  CHECK(v.bounds.size() == 2);
  // Each group's rows are one cross-attention over its frames' keys.
  const auto rows = model->encode_images(v);
  REQUIRE(rows.size() == 2);
  CHECK(rows[0]->pieces == 1);
  CHECK(rows[0]->data.size() == size_t(t) * size_t(model->config().hidden));
  CHECK(rows[0]->data != rows[1]->data);
}

TEST_CASE("a bad video is refused with its name and the reason") {
  auto model = ChatModel::load(test::data("minicpmv26-tiny"), one_cpu());
  video::test::ClipSpec spec;
  spec.frames = 30;   // 3 s at 10 fps: frames 0, 10 and 20 sampled; the cut file ends before 20
  spec.fps_num = 10;
  std::vector<uint8_t> clip = video::test::write_clip(spec);
  clip.resize(clip.size() / 2);
  CHECK_THROWS_AS(model->prepare({video_input(clip, "request 3 video 0")}, "?"), video::VideoError);
  CHECK_THROWS_WITH(model->prepare({video_input(clip, "request 3 video 0")}, "?"),
                    Contains("request 3 video 0") && Contains("truncated"));
  CHECK_THROWS_WITH(model->prepare({video_input({1, 2, 3, 4, 5, 6, 7, 8}, "request 3 video 0")}, "?"),
                    Contains("request 3 video 0"));
}

TEST_CASE("encoding a video's frames stops between resampler calls when interrupted, caching nothing") {
  auto model = ChatModel::load(test::data("minicpmv26-tiny"), one_cpu());
  video::test::ClipSpec spec;
  spec.frames = 40;
  spec.fps_num = 4;   // 10 s at 4 fps: 10 frames
  const ChatPrompt v = model->prepare({video_input(video::test::write_clip(spec))}, "?");
  REQUIRE(v.images.size() == 10);
  int polls = 0;
  CHECK_THROWS_AS(model->encode_images(v, nullptr, nullptr, [&] { return ++polls > 3; }), image::DecodeInterrupted);
  CHECK(polls == 4);   // three units ran, the fourth was not started
  const size_t misses = model->vision_cache().misses();
  (void)model->encode_images(v);
  CHECK(model->vision_cache().misses() == misses + 10);   // nothing of the stopped run was kept
}

TEST_CASE("a video's frames encoded on two cpu devices equal one device's bit for bit") {
  // The same thread count per device on both sides (docs/parallelism.md "Vision copies").
  auto one = ChatModel::load(test::data("minicpmv26-tiny"), one_cpu());
  auto two = ChatModel::load(test::data("minicpmv26-tiny"), [](const LlmConfig& c) {
    DecoderPlacement p = DecoderPlacement::single(kernels::make_device({}), c.n_layers);
    p.vision_copies.push_back(kernels::make_device(kernels::DeviceId::parse("cpu:1")));
    return p;
  });
  REQUIRE(two->vision_devices().size() == 2);
  video::test::ClipSpec spec;
  spec.width = 160;
  spec.height = 96;
  spec.frames = 24;
  spec.fps_num = 2;   // 12 s at 2 fps: 12 frames of 3 pieces
  const auto clip = video::test::write_clip(spec);
  const ChatPrompt a = one->prepare({video_input(clip)}, "?");
  const ChatPrompt b = two->prepare({video_input(clip)}, "?");
  REQUIRE(a.ids == b.ids);
  CHECK(all_rows(one->encode_images(a)) == all_rows(two->encode_images(b)));
}
