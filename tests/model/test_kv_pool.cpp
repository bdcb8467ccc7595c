// The paged KV pool's bookkeeping (model/kv_pool.h) and the prefix hashes that name a
// block's content (model/prefix_hash.h).
#include <catch2/catch.hpp>

#include "kernels/device.h"
#include "model/chat_model.h"
#include "model/kv_pool.h"
#include "model/prefix_hash.h"
#include "util/tiny_fixtures.h"

using namespace omni;

namespace {
Sha256 h(uint8_t x) {
  Sha256 d{};
  d[0] = x;
  return d;
}
}  // namespace

TEST_CASE("blocks are taken and returned, all or nothing", "[kv]") {
  BlockManager m(4, true);
  std::vector<int32_t> a, b;
  REQUIRE(m.allocate(3, a));
  CHECK(a.size() == 3);
  CHECK(m.available() == 1);
  CHECK_FALSE(m.allocate(2, b));
  CHECK(b.empty());
  m.release(a);
  CHECK(m.available() == 4);
  CHECK(m.stats().blocks_used == 0);
  CHECK_THROWS_WITH(m.release(a), Catch::Contains("not held"));
}

TEST_CASE("a published block stays cached after release and is found by its hash", "[kv]") {
  BlockManager m(3, true);
  std::vector<int32_t> a;
  REQUIRE(m.allocate(2, a));
  m.publish(a[0], h(1));
  m.publish(a[1], h(2));
  m.release(a);
  KvPoolStats s = m.stats();
  CHECK(s.blocks_used == 0);
  CHECK(s.blocks_cached == 2);
  CHECK(m.available() == 3);   // cached blocks can still be taken for new content
  // The longest prefix run: h(1), h(2) found, h(3) missing, h(1) after it not looked at.
  CHECK(m.cached_prefix({h(1), h(2), h(3), h(1)}) == 2);   // a look, nothing taken
  CHECK(m.stats().blocks_cached == 2);
  std::vector<int32_t> hit = m.match({h(1), h(2), h(3), h(1)});
  CHECK(hit == a);
  m.count_lookup(64, 2 * kBlockTokens);
  s = m.stats();
  CHECK(s.blocks_used == 2);
  CHECK(s.blocks_cached == 0);
  CHECK(s.lookup_tokens == 64);
  CHECK(s.hit_tokens == 2 * kBlockTokens);
  // Shared: a second holder; released by both, it is cached again.
  CHECK(m.match({h(1)}) == std::vector<int32_t>{a[0]});
  m.release({a[0]});
  m.release(hit);
  CHECK(m.stats().blocks_cached == 2);
}

TEST_CASE("the least recently used cached block goes first, later blocks of a sequence before earlier", "[kv]") {
  BlockManager m(3, true);
  std::vector<int32_t> a, b;
  REQUIRE(m.allocate(2, a));
  m.publish(a[0], h(1));
  m.publish(a[1], h(2));
  m.release(a);   // a[1] enters the cache before a[0]
  REQUIRE(m.allocate(2, b));   // the free block, then the oldest cached: a[1]
  CHECK(std::find(b.begin(), b.end(), a[1]) != b.end());
  CHECK(m.match({h(1)}) == std::vector<int32_t>{a[0]});
  CHECK(m.match({h(1), h(2)}).size() == 1);   // h(2) was evicted
}

TEST_CASE("without prefix caching nothing is found or kept", "[kv]") {
  BlockManager m(2, false);
  std::vector<int32_t> a;
  REQUIRE(m.allocate(1, a));
  m.publish(a[0], h(1));
  m.release(a);
  CHECK(m.stats().blocks_cached == 0);
  CHECK(m.match({h(1)}).empty());
  CHECK(m.cached_prefix({h(1)}) == 0);
}

TEST_CASE("a sequence takes blocks as it grows and gives them back", "[kv]") {
  auto dev = kernels::make_device({});
  auto pool = std::make_shared<KvPool>(std::vector<std::shared_ptr<kernels::Device>>{dev, dev}, 1, 8, 4, true);
  CHECK(pool->k(1).rows() == 4 * kBlockTokens);
  {
    KvSequence s(pool);
    REQUIRE(s.reserve(17));
    CHECK(s.blocks().size() == 2);
    s.advance(17);
    CHECK(s.blocks_needed(15) == 0);
    CHECK(s.blocks_needed(16) == 1);
    CHECK(s.row_of(16) == s.blocks()[1] * kBlockTokens);
    KvSequence other(pool);
    CHECK_FALSE(other.reserve(33));   // 3 blocks; 2 are left
    CHECK(other.blocks().empty());
    CHECK(other.reserve(32));
    CHECK_THROWS_WITH(s.advance(16), Catch::Contains("past its 2 blocks"));
  }
  CHECK(pool->blocks().stats().blocks_used == 0);
  KvSequence bounded(pool, 20);
  CHECK_THROWS_WITH(bounded.reserve(21), Catch::Contains("context length exceeded: 21 tokens, cache holds 20"));
}

TEST_CASE("prefix hashes: text rows by id, picture rows by the picture, never by placeholder ids", "[kv]") {
  auto model = ChatModel::load(test::data("minicpmv26-tiny"), [](const LlmConfig& c) {
    return DecoderPlacement::single(kernels::make_device({}), c.n_layers);
  });
  // Two different pictures of the same size: the same placeholder ids, different rows.
  std::vector<uint8_t> red(64 * 64 * 3, 0), blue(64 * 64 * 3, 0);
  for (size_t i = 0; i < red.size(); i += 3) red[i] = 200, blue[i + 2] = 200;
  auto raw = [](const std::vector<uint8_t>& px, const std::string& name) {
    ImageInput in = ImageInput::from_bytes(name, px);
    in.rgb_width = in.rgb_height = 64;
    return in;
  };
  ChatPrompt pr = model->prepare({raw(red, "red")}, "What colour?");
  ChatPrompt pb = model->prepare({raw(blue, "blue")}, "What colour?");
  REQUIRE(pr.ids == pb.ids);   // what a hash of ids would see: identical
  PrefixHasher hr = PrefixHasher::for_prompt(pr, 0), hb = PrefixHasher::for_prompt(pb, 0);
  REQUIRE(hr.rows() == hb.rows());
  const int64_t full = hr.rows() / kBlockTokens;
  REQUIRE(full >= 2);
  const auto& ar = hr.block_hashes(full);
  const auto& ab = hb.block_hashes(full);
  // Blocks before the picture agree; from the first block holding a picture row on, none do.
  const std::vector<int64_t> ends = hr.image_ends();
  int64_t first_image_row = 0;
  while (hr.row(first_image_row).image < 0) ++first_image_row;
  for (int64_t b = 0; b < full; ++b) {
    INFO("block " << b);
    if ((b + 1) * kBlockTokens <= first_image_row) CHECK(ar[size_t(b)] == ab[size_t(b)]);
    else CHECK(ar[size_t(b)] != ab[size_t(b)]);
  }
  CHECK(ends[0] > first_image_row);
  // The same picture again hashes the same, blocks chained: a change early changes all after.
  PrefixHasher again = PrefixHasher::for_prompt(model->prepare({raw(red, "red again")}, "What colour?"), 0);
  CHECK(again.block_hashes(full) == ar);
  PrefixHasher text_a, text_b;
  for (int i = 0; i < 32; ++i) text_a.push_token(i), text_b.push_token(i == 0 ? 99 : i);
  CHECK(text_a.block_hashes(2)[1] != text_b.block_hashes(2)[1]);
}
