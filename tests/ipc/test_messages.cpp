#include <catch2/catch.hpp>

#include <cstring>

#include "ipc/messages.h"

using namespace omni::ipc;

namespace {
Message roundtrip(const Message& m, std::size_t nfds = 0) {
  auto f = encode_message(m);
  FrameReader r;
  r.feed(f);
  auto fr = r.next();
  REQUIRE(fr);
  return decode_payload(fr->payload, nfds, Limits{});
}

// Build a payload map by hand.
struct MapBuilder {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> p{buf};
  std::vector<uint8_t> bytes() const {
    auto d = reinterpret_cast<const uint8_t*>(buf.data());
    return {d, d + buf.size()};
  }
};

IpcError decode_error(const std::vector<uint8_t>& payload, std::size_t nfds = 0) {
  try {
    (void)decode_payload(payload, nfds, Limits{});
  } catch (const IpcError& e) {
    return e;
  }
  FAIL("expected IpcError");
  return IpcError(ErrorCode::ok, "");
}
}  // namespace

TEST_CASE("every message round-trips") {
  Hello h{1, 0, "tester"};
  auto h2 = std::get<Hello>(roundtrip(h));
  REQUIRE(h2.client == "tester");
  REQUIRE(h2.proto_major == 1);

  HelloOk ok;
  ok.server_version = "0.1.0";
  ok.model = "MiniCPM-V-2.6";
  ok.limits.max_images = 3;
  auto ok2 = std::get<HelloOk>(roundtrip(ok));
  REQUIRE(ok2.model == "MiniCPM-V-2.6");
  REQUIRE(ok2.limits.max_images == 3);

  Generate g;
  g.id = 42;
  g.prompt = "What is in the picture?";
  g.images = {ImageRef{1, 12, ImageFormat::rgb, 2, 2}, ImageRef{0, 100, ImageFormat::encoded, 0, 0}};
  g.max_tokens = 17;
  g.sampling.temperature = 0.3;
  g.sampling.top_k = 5;
  g.sampling.top_p = 0.9;
  g.sampling.repetition_penalty = 1.05;
  g.sampling.seed = 1234567890123ull;
  g.sampling.greedy = true;
  g.stop = {"</s>", "\n\n"};
  g.deadline_ms = 5000;
  auto g2 = std::get<Generate>(roundtrip(g, 2));
  REQUIRE(g2.id == 42);
  REQUIRE(g2.prompt == g.prompt);
  REQUIRE(g2.images.size() == 2);
  REQUIRE(g2.images[0].format == ImageFormat::rgb);
  REQUIRE(g2.images[0].width == 2);
  REQUIRE(g2.images[1].fd_index == 0);
  REQUIRE(g2.max_tokens == 17);
  REQUIRE(g2.sampling.top_k == 5);
  REQUIRE(g2.sampling.seed == 1234567890123ull);
  REQUIRE(g2.sampling.greedy);
  REQUIRE(g2.stop == g.stop);
  REQUIRE(g2.deadline_ms == 5000);
  REQUIRE(g2.sampling.temperature == 0.3);
  REQUIRE(g2.sampling.repetition_penalty == 1.05);

  // Unset sampling fields stay unset (the server then uses the model's defaults).
  Generate bare;
  bare.id = 7;
  bare.prompt = "q";
  bare.sampling.top_p = 0.5;
  auto b2 = std::get<Generate>(roundtrip(bare));
  REQUIRE_FALSE(b2.sampling.temperature);
  REQUIRE_FALSE(b2.sampling.top_k);
  REQUIRE_FALSE(b2.sampling.repetition_penalty);
  REQUIRE(b2.sampling.top_p == 0.5);

  auto t = std::get<Token>(roundtrip(Token{42, "Hel", 1234}));
  REQUIRE(t.text == "Hel");
  REQUIRE(t.token == 1234);

  Done d;
  d.id = 42;
  d.reason = FinishReason::error;
  d.completion_tokens = 3;
  d.timings.total_ms = 12.5;
  d.error_code = ErrorCode::internal;
  d.error_message = "boom";
  auto d2 = std::get<Done>(roundtrip(d));
  REQUIRE(d2.reason == FinishReason::error);
  REQUIRE(d2.completion_tokens == 3);
  REQUIRE(d2.timings.total_ms == 12.5);
  REQUIRE(d2.error_message == "boom");

  REQUIRE(std::get<Cancel>(roundtrip(Cancel{42})).id == 42);
  REQUIRE(std::get<StatusRequest>(roundtrip(StatusRequest{3})).id == 3);

  Status s;
  s.id = 3;
  s.model = "m";
  s.queue_depth = 2;
  s.active_requests = 1;
  s.tokens_per_s = 31.5;
  s.details = Value(Value::Map{{"placement", Value("gpu0:0-27")},
                               {"memory", Value(Value::Map{{"cuda:0", Value(uint64_t{123})}})}});
  auto s2 = std::get<Status>(roundtrip(s));
  REQUIRE(s2.active_requests == 1);
  REQUIRE(s2.details.find("memory")->find("cuda:0") != nullptr);
  REQUIRE(std::get<std::string>(s2.details.find("placement")->v) == "gpu0:0-27");

  auto e = std::get<ErrorMsg>(roundtrip(ErrorMsg{9, ErrorCode::busy, "queue full"}));
  REQUIRE(e.code == ErrorCode::busy);
  REQUIRE(e.id == 9);
}

TEST_CASE("unknown fields are ignored, unknown types and codes handled") {
  MapBuilder b;
  b.p.pack_map(3);
  b.p.pack(std::string("type"));
  b.p.pack(std::string("cancel"));
  b.p.pack(std::string("id"));
  b.p.pack(uint64_t{5});
  b.p.pack(std::string("future_field"));
  b.p.pack(std::vector<int>{1, 2, 3});
  REQUIRE(std::get<Cancel>(decode_payload(b.bytes(), 0, Limits{})).id == 5);

  MapBuilder u;
  u.p.pack_map(1);
  u.p.pack(std::string("type"));
  u.p.pack(std::string("teleport"));
  auto e = decode_error(u.bytes());
  REQUIRE(e.code() == ErrorCode::bad_message);
  REQUIRE(std::string(e.what()).find("teleport") != std::string::npos);

  REQUIRE(error_code_from_name("some_future_code") == ErrorCode::internal);
}

TEST_CASE("missing required fields and wrong types name the field") {
  {
    MapBuilder b;  // generate without prompt
    b.p.pack_map(2);
    b.p.pack(std::string("type"));
    b.p.pack(std::string("generate"));
    b.p.pack(std::string("id"));
    b.p.pack(uint64_t{5});
    auto e = decode_error(b.bytes());
    REQUIRE(e.code() == ErrorCode::bad_message);
    REQUIRE(std::string(e.what()).find("generate.prompt") != std::string::npos);
  }
  {
    MapBuilder b;  // id as string
    b.p.pack_map(2);
    b.p.pack(std::string("type"));
    b.p.pack(std::string("cancel"));
    b.p.pack(std::string("id"));
    b.p.pack(std::string("5"));
    auto e = decode_error(b.bytes());
    REQUIRE(e.code() == ErrorCode::bad_message);
    REQUIRE(std::string(e.what()).find("cancel.id") != std::string::npos);
  }
  {
    MapBuilder b;  // no type
    b.p.pack_map(1);
    b.p.pack(std::string("id"));
    b.p.pack(1);
    REQUIRE(decode_error(b.bytes()).code() == ErrorCode::bad_message);
  }
  {
    MapBuilder b;  // type is not a string
    b.p.pack_map(1);
    b.p.pack(std::string("type"));
    b.p.pack(7);
    REQUIRE(decode_error(b.bytes()).code() == ErrorCode::bad_message);
  }
  {
    MapBuilder b;  // duplicate key
    b.p.pack_map(3);
    b.p.pack(std::string("type"));
    b.p.pack(std::string("cancel"));
    b.p.pack(std::string("id"));
    b.p.pack(1);
    b.p.pack(std::string("id"));
    b.p.pack(2);
    REQUIRE(decode_error(b.bytes()).code() == ErrorCode::bad_message);
  }
  {
    // Empty keys (msgpack-c gives them a null pointer; the fuzzer's first find, under
    // UBSan): two of them are a duplicate, not a crash.
    MapBuilder b;
    b.p.pack_map(2);
    b.p.pack(std::string());
    b.p.pack(std::string());
    b.p.pack(std::string());
    b.p.pack(0);
    REQUIRE(decode_error(b.bytes()).code() == ErrorCode::bad_message);
    const std::vector<uint8_t> fuzz_find = {0x82, 0xa0, 0xa0, 0xa0, 0x00};
    REQUIRE(decode_error(fuzz_find).code() == ErrorCode::bad_message);
  }
  {
    MapBuilder b;  // sampling.top_p of the wrong type
    b.p.pack_map(4);
    b.p.pack(std::string("type"));
    b.p.pack(std::string("generate"));
    b.p.pack(std::string("id"));
    b.p.pack(1);
    b.p.pack(std::string("prompt"));
    b.p.pack(std::string("q"));
    b.p.pack(std::string("sampling"));
    b.p.pack_map(1);
    b.p.pack(std::string("top_p"));
    b.p.pack(std::string("high"));
    uint64_t id = 0;
    try {
      (void)decode_payload(b.bytes(), 0, Limits{}, &id);
      FAIL("no error");
    } catch (const IpcError& e) {
      REQUIRE(e.code() == ErrorCode::bad_message);
      REQUIRE(std::string(e.what()).find("generate.sampling.top_p") != std::string::npos);
    }
    REQUIRE(id == 1);  // the server can address its error reply
  }
}

TEST_CASE("generate validation: ranges, images and descriptors") {
  Generate g;
  g.id = 1;
  g.prompt = "q";
  auto enc = [](const Generate& x) { return encode_payload(x); };
  SECTION("id zero") {
    g.id = 0;
    REQUIRE(decode_error(enc(g)).code() == ErrorCode::bad_message);
  }
  SECTION("max_tokens zero or too many") {
    g.max_tokens = 0;
    REQUIRE(decode_error(enc(g)).code() == ErrorCode::bad_message);
    g.max_tokens = 1'000'000;
    REQUIRE(decode_error(enc(g)).code() == ErrorCode::bad_message);
  }
  SECTION("top_p out of range") {
    g.sampling.top_p = 1.5;
    REQUIRE(decode_error(enc(g)).code() == ErrorCode::bad_message);
  }
  SECTION("fd index beyond passed descriptors") {
    g.images = {ImageRef{1, 10, ImageFormat::encoded, 0, 0}};
    REQUIRE(decode_error(enc(g), 1).code() == ErrorCode::bad_message);
  }
  SECTION("same descriptor twice") {
    g.images = {ImageRef{0, 10, ImageFormat::encoded, 0, 0}, ImageRef{0, 10, ImageFormat::encoded, 0, 0}};
    REQUIRE(decode_error(enc(g), 2).code() == ErrorCode::bad_message);
  }
  SECTION("unreferenced descriptors") {
    REQUIRE(decode_error(enc(g), 1).code() == ErrorCode::bad_message);
  }
  SECTION("rgb size must match") {
    g.images = {ImageRef{0, 11, ImageFormat::rgb, 2, 2}};
    REQUIRE(decode_error(enc(g), 1).code() == ErrorCode::bad_message);
  }
  SECTION("image larger than the limit") {
    g.images = {ImageRef{0, (1ull << 40), ImageFormat::encoded, 0, 0}};
    REQUIRE(decode_error(enc(g), 1).code() == ErrorCode::too_large);
  }
  SECTION("too many images") {
    for (uint32_t i = 0; i < 9; ++i) g.images.push_back(ImageRef{i, 10, ImageFormat::encoded, 0, 0});
    REQUIRE(decode_error(enc(g), 9).code() == ErrorCode::too_large);
  }
  SECTION("prompt too long") {
    g.prompt.assign(100 * 1024, 'a');
    REQUIRE(decode_error(enc(g)).code() == ErrorCode::too_large);
  }
  SECTION("descriptors on a non-generate frame") {
    REQUIRE(decode_error(encode_payload(Cancel{1}), 1).code() == ErrorCode::bad_message);
  }
}
