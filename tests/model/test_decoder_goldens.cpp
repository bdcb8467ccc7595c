// The decoder against logits and greedy tokens computed by Hugging Face transformers
// (float64) for the tiny Qwen2, Qwen3 and Llama checkpoints in tests/data.
#include <catch2/catch.hpp>

#include "kernels/device.h"
#include "model/causal_lm.h"
#include "util/golden.h"
#include "util/npy.h"

using namespace omni;

namespace {

std::unique_ptr<CausalLm> load_on(const std::string& dir, const std::vector<std::string>& devs) {
  return CausalLm::load(dir, [&](const LlmConfig& cfg) {
    std::vector<std::shared_ptr<kernels::Device>> d;
    for (const auto& s : devs) d.push_back(kernels::make_device(kernels::DeviceId::parse(s)));
    DecoderPlacement p{d.front(), {}, d.back()};
    for (int l = 0; l < cfg.n_layers; ++l) p.layer_devices.push_back(d[size_t(l) * d.size() / size_t(cfg.n_layers)]);
    return p;
  });
}

void check_golden(const std::string& name, const std::vector<std::string>& devs) {
  const std::string dir = test::data(name);
  auto lm = load_on(dir, devs);
  const Decoder& dec = lm->decoder();
  std::vector<int32_t> ids = read_npy(dir + "/golden_input_ids.npy").as_int32();
  std::vector<float> want = read_npy(dir + "/golden_logits.npy").as_float();

  auto cache = dec.new_cache(int64_t(ids.size()));
  std::vector<float> got = prefill(dec, *cache, dec.embed(ids), true);
  const double err = test::rel_error(got, want);
  INFO(name << " logits relative error " << err);
  CHECK(err <= 1e-4);

  // Greedy from the first 40 tokens: one prefill, then one token at a time. The reference
  // ran generate() with pad_token_id 0, so the prompt's token 0 is padding there.
  std::vector<int32_t> first = drop_pad_tokens(std::vector<int32_t>(ids.begin(), ids.begin() + 40), 0);
  std::vector<int32_t> expect = read_npy(dir + "/golden_greedy_from_40.npy").as_int32();
  auto c2 = dec.new_cache(40 + int64_t(expect.size()));
  std::vector<float> last = prefill(dec, *c2, dec.embed(first), false);
  SamplingParams g;
  g.greedy = true;
  const SamplingParams& s = g;
  std::vector<int32_t> gen = generate(dec, *c2, last, int(expect.size()), s, {});
  CHECK(gen == expect);
}

}  // namespace

TEST_CASE("qwen2-tiny matches transformers", "[golden]") { check_golden("qwen2-tiny", {"cpu:0"}); }
TEST_CASE("qwen3-tiny matches transformers", "[golden]") { check_golden("qwen3-tiny", {"cpu:0"}); }
TEST_CASE("llama-tiny matches transformers", "[golden]") { check_golden("llama-tiny", {"cpu:0"}); }

TEST_CASE("decode steps through the KV cache equal a full prefill", "[kv]") {
  auto lm = load_on(test::data("qwen2-tiny"), {"cpu:0"});
  const Decoder& dec = lm->decoder();
  std::vector<int32_t> ids = read_npy(test::data("qwen2-tiny/golden_input_ids.npy")).as_int32();
  ids.resize(24);
  auto full = dec.new_cache(24);
  std::vector<float> ref = prefill(dec, *full, dec.embed(ids), true);
  auto inc = dec.new_cache(24);
  std::vector<int32_t> head(ids.begin(), ids.begin() + 20);
  prefill(dec, *inc, dec.embed(head), false);
  std::vector<float> step;
  for (int i = 20; i < 24; ++i) step = dec.logits(dec.forward(dec.embed({ids[size_t(i)]}), {{inc.get(), 1}}));
  std::vector<float> ref_last(ref.end() - dec.config().vocab, ref.end());
  CHECK(test::rel_error(step, ref_last) < 1e-5);
}

TEST_CASE("a batch of two sequences equals each run alone", "[batch]") {
  auto lm = load_on(test::data("llama-tiny"), {"cpu:0"});
  const Decoder& dec = lm->decoder();
  std::vector<int32_t> ids = read_npy(test::data("llama-tiny/golden_input_ids.npy")).as_int32();
  std::vector<int32_t> a(ids.begin(), ids.begin() + 10), b(ids.begin() + 50, ids.begin() + 67);
  auto ca = dec.new_cache(32), cb = dec.new_cache(32);
  std::vector<float> ra = prefill(dec, *ca, dec.embed(a), true);
  std::vector<float> rb = prefill(dec, *cb, dec.embed(b), true);

  auto ba = dec.new_cache(32), bb = dec.new_cache(32);
  std::vector<int32_t> both = a;
  both.insert(both.end(), b.begin(), b.end());
  std::vector<float> r = dec.logits(dec.forward(dec.embed(both), {{ba.get(), 10}, {bb.get(), 17}}));
  const size_t V = size_t(dec.config().vocab);
  CHECK(test::rel_error(std::vector<float>(r.begin(), r.begin() + 10 * V), ra) < 1e-6);
  CHECK(test::rel_error(std::vector<float>(r.begin() + 10 * V, r.end()), rb) < 1e-6);
  CHECK(ba->length() == 10);
  CHECK(bb->length() == 17);
}

TEST_CASE("layers spread over three cpu devices give the same logits", "[pipeline]") {
  for (const char* name : {"qwen2-tiny", "qwen3-tiny", "llama-tiny"}) {
    auto one = load_on(test::data(name), {"cpu:0"});
    auto three = load_on(test::data(name), {"cpu:0", "cpu:1", "cpu:2"});
    std::vector<int32_t> ids = read_npy(test::data(std::string(name) + "/golden_input_ids.npy")).as_int32();
    auto c1 = one->decoder().new_cache(int64_t(ids.size()));
    auto c3 = three->decoder().new_cache(int64_t(ids.size()));
    std::vector<float> r1 = prefill(one->decoder(), *c1, one->decoder().embed(ids), true);
    std::vector<float> r3 = prefill(three->decoder(), *c3, three->decoder().embed(ids), true);
    INFO(name);
    CHECK(test::rel_error(r3, r1) <= 1e-6);
  }
}

TEST_CASE("a prompt longer than the cache is refused", "[kv]") {
  auto lm = load_on(test::data("qwen2-tiny"), {"cpu:0"});
  auto cache = lm->decoder().new_cache(4);
  CHECK_THROWS_WITH(prefill(lm->decoder(), *cache, lm->decoder().embed({1, 2, 3, 4, 5}), false),
                    Catch::Contains("context length exceeded"));
}

TEST_CASE("token ids outside the vocabulary are refused", "[input]") {
  auto lm = load_on(test::data("qwen2-tiny"), {"cpu:0"});
  CHECK_THROWS_WITH(lm->decoder().embed({1, 100000}), Catch::Contains("outside the vocabulary"));
}
