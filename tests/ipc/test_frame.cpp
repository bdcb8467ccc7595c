#include <catch2/catch.hpp>

#include <sys/socket.h>

#include "ipc/frame.h"
#include "ipc/memfd.h"
#include "ipc/messages.h"
#include "ipc_test_util.h"

using namespace omni::ipc;
using omni_test::bytes;

namespace {
ErrorCode code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const IpcError& e) {
    return e.code();
  }
  return ErrorCode::ok;
}
}  // namespace

TEST_CASE("encode_frame prefixes a big-endian length") {
  auto f = encode_frame(bytes({0x80}));
  REQUIRE(f == bytes({0, 0, 0, 1, 0x80}));
}

TEST_CASE("FrameReader yields frames split across arbitrary chunks") {
  auto a = encode_message(Cancel{7});
  auto b = encode_message(StatusRequest{9});
  std::vector<uint8_t> all = a;
  all.insert(all.end(), b.begin(), b.end());
  for (std::size_t step = 1; step <= all.size(); ++step) {
    FrameReader r;
    std::vector<Message> got;
    for (std::size_t i = 0; i < all.size(); i += step) {
      r.feed(std::span(all.data() + i, std::min(step, all.size() - i)));
      while (auto f = r.next()) got.push_back(decode_message(*f, r.limits()));
    }
    REQUIRE(got.size() == 2);
    REQUIRE(std::get<Cancel>(got[0]).id == 7);
    REQUIRE(std::get<StatusRequest>(got[1]).id == 9);
    REQUIRE(r.buffered_bytes() == 0);
  }
}

TEST_CASE("truncated frame is incomplete, not an error") {
  auto a = encode_message(Cancel{7});
  FrameReader r;
  r.feed(std::span(a.data(), a.size() - 1));
  REQUIRE_FALSE(r.next().has_value());
  r.feed(std::span(a.data() + a.size() - 1, 1));
  REQUIRE(r.next().has_value());
}

TEST_CASE("absurd frame length is rejected before allocating") {
  FrameReader r;
  r.feed(bytes({0xff, 0xff, 0xff, 0xff, 0x80}));
  REQUIRE(code_of([&] { (void)r.next(); }) == ErrorCode::too_large);
  // the reader stays failed
  REQUIRE(code_of([&] { (void)r.next(); }) == ErrorCode::bad_frame);
  FrameReader z;
  z.feed(bytes({0, 0, 0, 0}));
  REQUIRE(code_of([&] { (void)z.next(); }) == ErrorCode::bad_frame);
  Limits small;
  small.max_frame_bytes = 16;
  FrameReader s(small);
  s.feed(bytes({0, 0, 0, 17}));
  REQUIRE(code_of([&] { (void)s.next(); }) == ErrorCode::too_large);
}

TEST_CASE("unpack_payload: garbage, non-map, trailing bytes, truncation") {
  Limits L;
  REQUIRE(code_of([&] { unpack_payload(bytes({0xc1}), L); }) == ErrorCode::bad_frame);       // never-used byte
  REQUIRE(code_of([&] { unpack_payload(bytes({0x93, 1, 2, 3}), L); }) == ErrorCode::bad_frame);  // array
  REQUIRE(code_of([&] { unpack_payload(bytes({0x80, 0x80}), L); }) == ErrorCode::bad_frame);  // trailing
  REQUIRE(code_of([&] { unpack_payload(bytes({0x81, 0xa1, 'a'}), L); }) == ErrorCode::bad_frame);  // truncated
  REQUIRE(code_of([&] { unpack_payload(bytes({0x80}), L); }) == ErrorCode::ok);
  // random garbage never escapes as anything but IpcError
  uint32_t x = 12345;
  for (int t = 0; t < 2000; ++t) {
    std::vector<uint8_t> g(1 + t % 64);
    for (auto& c : g) {
      x = x * 1664525u + 1013904223u;
      c = static_cast<uint8_t>(x >> 24);
    }
    try {
      (void)decode_payload(g, 0, L);
    } catch (const IpcError&) {
    }
  }
}

TEST_CASE("5-byte msgpack headers asking for gigabytes are refused") {
  Limits L;
  // map32 with 0xffffffff entries
  REQUIRE(code_of([&] { unpack_payload(bytes({0xdf, 0xff, 0xff, 0xff, 0xff}), L); }) == ErrorCode::too_large);
  // map { "a": array32(0xffffffff) }
  REQUIRE(code_of([&] {
            unpack_payload(bytes({0x81, 0xa1, 'a', 0xdd, 0xff, 0xff, 0xff, 0xff}), L);
          }) == ErrorCode::too_large);
  // map { "a": str32(4 GB) } and bin32
  // (the parser needs the declared bytes present, so these are "truncated": never allocated)
  REQUIRE(code_of([&] {
            unpack_payload(bytes({0x81, 0xa1, 'a', 0xdb, 0xff, 0xff, 0xff, 0xff}), L);
          }) != ErrorCode::ok);
  REQUIRE(code_of([&] {
            unpack_payload(bytes({0x81, 0xa1, 'a', 0xc6, 0xff, 0xff, 0xff, 0xff}), L);
          }) != ErrorCode::ok);
  // a string that is really there but longer than max_string_bytes
  std::vector<uint8_t> big = {0x81, 0xa1, 'a', 0xdb, 0x00, 0x04, 0x80, 0x00};  // 0x48000 = 288 KiB
  big.resize(big.size() + 0x48000, 'x');
  REQUIRE(code_of([&] { unpack_payload(big, L); }) == ErrorCode::too_large);
  // ext is refused
  REQUIRE(code_of([&] { unpack_payload(bytes({0x81, 0xa1, 'a', 0xd4, 0x01, 0x00}), L); }) != ErrorCode::ok);
  // an array count below the limit but above the remaining bytes
  REQUIRE(code_of([&] { unpack_payload(bytes({0x81, 0xa1, 'a', 0xdc, 0x03, 0xff}), L); }) == ErrorCode::too_large);
}

TEST_CASE("deep nesting is refused") {
  Limits L;
  std::vector<uint8_t> p = {0x81, 0xa1, 'a'};
  for (int i = 0; i < 100; ++i) p.push_back(0x91);  // [[[[...
  p.push_back(0xc0);
  REQUIRE(code_of([&] { unpack_payload(p, L); }) == ErrorCode::too_large);
  std::vector<uint8_t> ok = {0x81, 0xa1, 'a', 0x91, 0x91, 0xc0};
  REQUIRE(code_of([&] { unpack_payload(ok, L); }) == ErrorCode::ok);
}

TEST_CASE("descriptors are attributed to the frame that starts in their chunk") {
  auto a = encode_message(StatusRequest{1});
  auto fd = make_sealed_memfd(bytes({1, 2, 3}));
  int raw = ::dup(fd.get());
  Generate g;
  g.id = 5;
  g.prompt = "x";
  g.images.push_back(ImageRef{0, 3, ImageFormat::encoded, 0, 0});
  auto b = encode_message(g);
  FrameReader r;
  // chunk 1: all of a + first 3 bytes of b, carrying the fd
  std::vector<uint8_t> c1 = a;
  c1.insert(c1.end(), b.begin(), b.begin() + 3);
  std::vector<UniqueFd> fds;
  fds.emplace_back(raw);
  r.feed(c1, std::move(fds));
  auto f1 = r.next();
  REQUIRE(f1);
  REQUIRE(f1->fds.empty());
  REQUIRE_FALSE(r.next());
  r.feed(std::span(b.data() + 3, b.size() - 3));
  auto f2 = r.next();
  REQUIRE(f2);
  REQUIRE(f2->fds.size() == 1);
  auto m = decode_message(*f2, r.limits());
  REQUIRE(std::get<Generate>(m).images.size() == 1);
}

TEST_CASE("descriptors arriving mid-frame, or too many, are errors and are closed") {
  const int before = omni_test::count_open_fds();
  {
    auto b = encode_message(StatusRequest{1});
    FrameReader r;
    r.feed(std::span(b.data(), 2));
    std::vector<UniqueFd> fds;
    fds.emplace_back(::dup(0));
    r.feed(std::span(b.data() + 2, 2), std::move(fds));  // no frame starts here
    r.feed(std::span(b.data() + 4, b.size() - 4));
    REQUIRE(code_of([&] { (void)r.next(); }) == ErrorCode::bad_frame);
  }
  {
    Limits L;
    L.max_fds_per_frame = 2;
    FrameReader r(L);
    std::vector<UniqueFd> fds;
    for (int i = 0; i < 3; ++i) fds.emplace_back(::dup(0));
    REQUIRE(code_of([&] { r.feed(bytes({0, 0, 0, 1}), std::move(fds)); }) == ErrorCode::too_large);
  }
  REQUIRE(omni_test::count_open_fds() == before);
}
