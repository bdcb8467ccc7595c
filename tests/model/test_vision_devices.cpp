// The vision tower on several devices (model/vision_encoder.h): pictures, video-like
// frames and MiniCPM-V 4.5 frame groups encoded over cpu:0 and cpu:1 give the same rows, bit for bit, as on cpu:0 alone
// at the same CPU thread count (and to rounding at omnid's default counts for one device
// and two, which differ); the copies really share the work; an error in one copy reaches the
// caller; and a frame group's pieces form resampler calls of one piece per frame.
#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

#include "kernels/cpu/cpu_threads.h"
#include "kernels/device.h"
#include "model/chat_model.h"
#include "model/vision_encoder.h"
#include "util/error.h"
#include "util/tiny_fixtures.h"

using namespace omni;

namespace {

using DevicePtr = std::shared_ptr<kernels::Device>;

DevicePtr dev(const std::string& id) { return kernels::make_device(kernels::DeviceId::parse(id)); }

// The whole tiny model on `main`; a vision copy on each of `copies`.
std::unique_ptr<ChatModel> load_tiny(const DevicePtr& main, const std::vector<DevicePtr>& copies = {},
                                     const std::string& name = "minicpmv26-tiny") {
  return ChatModel::load(test::data(name), [main, copies](const LlmConfig& c) {
    DecoderPlacement p = DecoderPlacement::single(main, c.n_layers);
    p.vision_copies = copies;
    return p;
  });
}

// A frame of w x h (multiples of the patch size: one piece, as a 2.6 video frame is) with
// a gradient that differs per frame.
PreparedImage frame(int i, int w = 56, int h = 42) {
  image::Image img;
  img.width = w;
  img.height = h;
  img.rgb.resize(size_t(w) * size_t(h) * 3);
  for (size_t k = 0; k < img.rgb.size(); ++k) img.rgb[k] = uint8_t((k * 7 + size_t(i) * 31) % 251);
  PreparedImage p;
  p.cache_key = "test frame " + std::to_string(i) + " " + std::to_string(w) + "x" + std::to_string(h);
  p.sliced.pieces.push_back(std::move(img));
  return p;
}

// A MiniCPM-V 4.5 frame group of `n` frames, two pieces a frame (56x42 and 42x42), slice-major
// as PreparedImage holds them: the first piece of every frame, then the second.
PreparedImage frame_group(int g, int n) {
  PreparedImage p;
  p.cache_key = "test group " + std::to_string(g);
  for (int piece = 0; piece < 2; ++piece)
    for (int f = 0; f < n; ++f) {
      PreparedImage one = frame(g * 100 + f * 10 + piece, piece ? 42 : 56, 42);
      p.sliced.pieces.push_back(std::move(one.sliced.pieces.front()));
    }
  for (int f = 0; f < n; ++f) p.temporal_ids.push_back(int32_t(g * 40 + f * 5));
  return p;
}

ChatPrompt frames_prompt(int n, int w = 56, int h = 42) {
  ChatPrompt p;   // encode_images reads only the pictures
  for (int i = 0; i < n; ++i) p.images.push_back(frame(i, w, h));
  return p;
}

// Several pictures as a request brings them: sliced (overview and slices), raw RGB and PNG.
ChatPrompt pictures_prompt(const ChatModel& m) {
  test::SameSizePictures px;
  return m.prepare({test::tiny_picture("case_small"), test::tiny_picture("case_wide"),
                    test::SameSizePictures::input(px.red, "red"), test::SameSizePictures::input(px.blue, "blue")},
                   "What differs?");
}

void check_bitwise(const std::vector<std::shared_ptr<const VisionEmbeds>>& got,
                   const std::vector<std::shared_ptr<const VisionEmbeds>>& want) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("picture " << i);
    REQUIRE(got[i]);
    REQUIRE(want[i]);
    CHECK(got[i]->pieces == want[i]->pieces);
    CHECK(got[i]->data == want[i]->data);   // exact float equality, every row
  }
}

// Restores the CPU thread setting a case changes.
struct ThreadsGuard {
  int saved = kernels::cpu_threads();
  ~ThreadsGuard() { kernels::set_cpu_threads(saved); }
};

}  // namespace

TEST_CASE("vision on cpu:0 and cpu:1 gives one device's rows bit for bit for several pictures", "[vision][devices]") {
  auto one = load_tiny(dev("cpu:0"));
  auto two = load_tiny(dev("cpu:0"), {dev("cpu:1")});
  REQUIRE(one->vision_devices().size() == 1);
  REQUIRE(two->vision_devices().size() == 2);
  CHECK(two->vision_devices()[1]->id().str() == "cpu:1");
  ChatPrompt p1 = pictures_prompt(*one), p2 = pictures_prompt(*two);
  size_t pieces = 0;
  for (const auto& im : p1.images) pieces += im.sliced.pieces.size();
  REQUIRE(pieces > 4);   // slices and overviews: more units than pictures
  check_bitwise(two->encode_images(p2), one->encode_images(p1));
  // ... and so the prompt embeddings, which the decoder reads.
  CHECK(two->embed_prompt(p2, two->encode_images(p2)).to_host() == one->embed_prompt(p1, one->encode_images(p1)).to_host());
}

TEST_CASE("vision on cpu:0 and cpu:1 gives one device's rows bit for bit for 32 video-like frames", "[vision][devices]") {
  auto one = load_tiny(dev("cpu:0"));
  auto two = load_tiny(dev("cpu:0"), {dev("cpu:1")});
  const ChatPrompt p = frames_prompt(32);
  check_bitwise(two->encode_images(p), one->encode_images(p));
}

TEST_CASE("MiniCPM-V 4.5 frame groups on cpu:0 and cpu:1 give one device's rows bit for bit", "[vision][devices]") {
  auto one = load_tiny(dev("cpu:0"), {}, "minicpmv45-tiny");
  auto two = load_tiny(dev("cpu:0"), {dev("cpu:1")}, "minicpmv45-tiny");
  ChatPrompt p;
  for (int g = 0; g < 5; ++g) p.images.push_back(frame_group(g, 3));
  const auto want = one->encode_images(p);
  REQUIRE(want.size() == 5);
  CHECK(want[0]->pieces == 2);   // one resampler call per slice position
  CHECK(want[0]->data.size() == size_t(2 * one->query_num() * one->config().hidden));
  check_bitwise(two->encode_images(p), want);
}

TEST_CASE("vision rows are the same bit for bit on one two or three cpu devices at each thread count", "[vision][devices]") {
  // Pieces of 16x16 patches make the tower's GEMMs large enough for OpenBLAS to use its
  // threads (it runs products of m·n·k <= 262144 on one).
  ThreadsGuard guard;
  const ChatPrompt p = frames_prompt(6, 224, 224);
  for (int threads : {1, 2}) {
    INFO(threads << " threads per cpu device");
    kernels::set_cpu_threads(threads);
    auto one = load_tiny(dev("cpu:0"));
    const auto want = one->encode_images(p);
    check_bitwise(load_tiny(dev("cpu:0"), {dev("cpu:1")})->encode_images(p), want);
    check_bitwise(load_tiny(dev("cpu:0"), {dev("cpu:1"), dev("cpu:2")})->encode_images(p), want);
  }
}

TEST_CASE("vision rows at omnid's default threads for one device and for two agree to rounding", "[vision][devices]") {
  // omnid shares the cores among the cpu devices (kernels/cpu/cpu_threads.h): one device
  // computes with 2 threads here, two with 1 each. OpenBLAS's sgemm rounds differently with
  // another thread count (it partitions C by threads, and its kernels' sums depend on a
  // tile's position), so bit equality needs the same --threads; docs/parallelism.md.
  ThreadsGuard guard;
  const ChatPrompt p = frames_prompt(6, 224, 224);
  kernels::set_cpu_threads(2);
  const auto want = load_tiny(dev("cpu:0"))->encode_images(p);
  kernels::set_cpu_threads(1);
  const auto got = load_tiny(dev("cpu:0"), {dev("cpu:1")})->encode_images(p);
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) CHECK(test::rel_error(got[i]->data, want[i]->data) <= 1e-5);
}

TEST_CASE("vision copies share the frames: each copy takes units under its own device's turn lock", "[vision][devices]") {
  auto cpu0 = dev("cpu:0"), cpu1 = dev("cpu:1");
  auto m = load_tiny(cpu0, {cpu1});
  const ChatPrompt p = frames_prompt(8);
  std::vector<std::shared_ptr<const VisionEmbeds>> got;
  {
    // Hold both devices' locks: each copy queues for its own, which shows that both took a
    // unit (the primary under the lock passed in, the copy on cpu:1 under cpu:1's).
    std::unique_lock<kernels::TurnLock> held0(cpu0->exec_mutex()), held1(cpu1->exec_mutex());
    std::thread t([&] { got = m->encode_images(p, &cpu0->exec_mutex()); });
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while ((cpu0->exec_mutex().waiting() == 0 || cpu1->exec_mutex().waiting() == 0) &&
           std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    CHECK(cpu0->exec_mutex().waiting() == 1);
    CHECK(cpu1->exec_mutex().waiting() == 1);
    held0.unlock();
    held1.unlock();
    t.join();
  }
  auto one = load_tiny(cpu0);
  check_bitwise(got, one->encode_images(p));
}

TEST_CASE("an error in one vision copy reaches the caller once every copy stopped, and nothing is cached", "[vision][devices]") {
  auto m = load_tiny(dev("cpu:0"), {dev("cpu:1")});
  ChatPrompt p = frames_prompt(12);
  p.images[7].sliced.pieces[0].width = 50;   // not a multiple of the patch size: the tower refuses it
  p.images[7].sliced.pieces[0].rgb.resize(50 * 42 * 3);
  const size_t entries = m->vision_cache().entries();
  CHECK_THROWS_WITH(m->encode_images(p), Catch::Contains("vision tower"));
  CHECK(m->vision_cache().entries() == entries);
  // The copies are usable afterwards.
  p.images[7] = frame(7);
  auto one = load_tiny(dev("cpu:0"));
  check_bitwise(m->encode_images(p), one->encode_images(p));
}

TEST_CASE("a picture shown twice in a prompt is encoded once and skipped pictures stay null", "[vision][devices]") {
  auto m = load_tiny(dev("cpu:0"), {dev("cpu:1")});
  ChatPrompt p = frames_prompt(3);
  p.images.push_back(p.images[1]);
  const std::vector<bool> skip{false, false, true, false};
  auto got = m->encode_images(p, nullptr, &skip);
  REQUIRE(got.size() == 4);
  CHECK(got[2] == nullptr);
  CHECK(got[3].get() == got[1].get());
  CHECK(m->vision_cache().entries() == 2);
}

TEST_CASE("a frame group's pieces form one resampler call per slice position, frames in order", "[vision][devices]") {
  // PreparedImage: slice-major, piece g of frames 0..n-1, then g+1.
  std::vector<image::Image> pieces(6);
  const std::vector<int32_t> ids{0, 5, 10};
  std::vector<float> out(2 * 4);
  const auto units = VisionEncoder::units_of(pieces, ids, out.data(), 4);
  REQUIRE(units.size() == 2);
  for (size_t r = 0; r < 2; ++r) {
    REQUIRE(units[r].pieces.size() == 3);
    for (size_t f = 0; f < 3; ++f) CHECK(units[r].pieces[f] == &pieces[r * 3 + f]);
    CHECK(units[r].temporal_ids == &ids);
    CHECK(units[r].out == out.data() + r * 4);
  }
  const auto still = VisionEncoder::units_of(pieces, {}, out.data(), 1);
  CHECK(still.size() == 6);
  CHECK(still[5].temporal_ids == nullptr);
  CHECK_THROWS_WITH(VisionEncoder::units_of(std::vector<image::Image>(5), ids, out.data(), 4),
                    Catch::Contains("5 pieces do not split into 3 frames"));
}
