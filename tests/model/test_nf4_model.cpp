// A bitsandbytes NF4 checkpoint (tests/data/qwen2-tiny-nf4, tools/make_nf4_tiny.py) answers
// exactly as its twin, the same weights dequantized to bf16 and saved plainly: same logits
// bit for bit, same greedy tokens, on one device (f32 and bf16 cpu weights) and split over
// two tensor-parallel ranks (whose shards of each NF4 weight come from one dequantized copy).
#include <catch2/catch.hpp>

#include "kernels/device.h"
#include "model/causal_lm.h"
#include "util/golden.h"
#include "util/npy.h"

using namespace omni;

namespace {

struct Answers {
  std::vector<float> logits;   // every prompt position
  std::vector<int32_t> greedy;
};

Answers run(const std::string& name, bool tensor_parallel, kernels::CpuWeights weights = kernels::CpuWeights::F32) {
  auto lm = CausalLm::load(test::data(name), [&](const LlmConfig& cfg) {
    if (!tensor_parallel) return DecoderPlacement::single(kernels::make_device({}, 0, weights), cfg.n_layers);
    return DecoderPlacement::tensor_parallel({kernels::make_device(kernels::DeviceId::parse("cpu:0")),
                                              kernels::make_device(kernels::DeviceId::parse("cpu:1"))},
                                             cfg.n_layers);
  });
  const Decoder& dec = lm->decoder();
  std::vector<int32_t> ids = read_npy(test::data("qwen2-tiny/golden_input_ids.npy")).as_int32();
  Answers a;
  auto cache = dec.new_cache(int64_t(ids.size()));
  a.logits = prefill(dec, *cache, dec.embed(ids), true);
  std::vector<int32_t> first = drop_pad_tokens(std::vector<int32_t>(ids.begin(), ids.begin() + 40), 0);
  auto c2 = dec.new_cache(40 + 24);
  std::vector<float> last = prefill(dec, *c2, dec.embed(first), false);
  SamplingParams g;
  g.greedy = true;
  a.greedy = generate(dec, *c2, last, 24, g, {});
  return a;
}

}  // namespace

TEST_CASE("an NF4 checkpoint answers as the same weights dequantized to bf16", "[nf4]") {
  using kernels::CpuWeights;
  // f32 weights convert the dequantized copy; bf16 weights adopt it (kept after the release).
  for (auto [tp, weights] : {std::pair{false, CpuWeights::F32}, {true, CpuWeights::F32}, {false, CpuWeights::BF16}}) {
    INFO((tp ? "tensor parallel over cpu:0, cpu:1" : "one device") << ", cpu weights " << kernels::to_string(weights));
    const Answers nf4 = run("qwen2-tiny-nf4", tp, weights);
    const Answers twin = run("qwen2-tiny-nf4-twin", tp, weights);
    REQUIRE(nf4.logits.size() == twin.logits.size());
    CHECK(nf4.logits == twin.logits);
    CHECK(nf4.greedy == twin.greedy);
    CHECK(nf4.greedy.size() == 24);
  }
}

TEST_CASE("an NF4 checkpoint stays near the weights it was quantized from", "[nf4]") {
  // Four bits a weight cost accuracy, not sense: the logits stay near the unquantized
  // model's transformers golden (0.23 relative, from weights about 9 % off). This guards
  // tools/make_nf4_tiny.py's quantizer; the twin test above guards the engine.
  const Answers nf4 = run("qwen2-tiny-nf4", false);
  const std::vector<float> golden = read_npy(test::data("qwen2-tiny/golden_logits.npy")).as_float();
  const double err = test::rel_error(nf4.logits, golden);
  INFO("relative error against the bf16 model's golden " << err);
  CHECK(err < 0.4);
}
