// Pipeline and tensor-parallel layouts from the planner compute what one device does:
// pipeline logits within 1e-6, tensor parallel within 1e-5, greedy tokens identical.
#include <catch2/catch.hpp>

#include <fstream>
#include <nlohmann/json.hpp>

#include "model/causal_lm.h"
#include "model/chat_model.h"
#include "plan/placement.h"
#include "plan_fixtures.h"
#include "util/npy.h"
#include "util/tiny_fixtures.h"

using namespace omni;
using plan::Parallel;

namespace {

CausalLm::PlaceFn planned(const std::string& model, const std::string& devs, Parallel par,
                          std::vector<double> split = {}) {
  return [=](const LlmConfig&) {
    auto o = test::options(devs, par);
    o.split = split;
    return plan::make_placement(plan::make_plan(test::shape_of(model), o));
  };
}

struct Run {
  std::vector<float> logits;
  std::vector<int32_t> greedy;
};

Run run_text(const std::string& name, const std::string& devs, Parallel par) {
  auto lm = CausalLm::load(test::data(name), planned(name, devs, par));
  const Decoder& dec = lm->decoder();
  std::vector<int32_t> ids = read_npy(test::data(name + "/golden_input_ids.npy")).as_int32();
  Run r;
  auto cache = dec.new_cache(int64_t(ids.size()));
  r.logits = prefill(dec, *cache, dec.embed(ids), true);
  std::vector<int32_t> first = drop_pad_tokens(std::vector<int32_t>(ids.begin(), ids.begin() + 40), 0);
  auto c2 = dec.new_cache(80);
  SamplingParams g;
  g.greedy = true;
  const SamplingParams& s = g;
  r.greedy = generate(dec, *c2, prefill(dec, *c2, dec.embed(first), false), 24, s, {});
  return r;
}

Run run_vision(const std::string& devs, Parallel par, std::vector<double> split = {}) {
  const std::string dir = test::data("minicpmv26-tiny");
  auto m = ChatModel::load(dir, planned("minicpmv26-tiny", devs, par, split));
  ChatPrompt p = m->prepare({test::tiny_picture("case_small")}, test::slurp(dir + "/case_small/question.txt"));
  const Decoder& dec = m->decoder();
  kernels::Tensor emb = m->embed_prompt(p, m->encode_images(p));
  Run r;
  auto cache = dec.new_cache(emb.rows() + 24);
  r.logits = prefill(dec, *cache, emb, true);
  SamplingParams g;
  g.greedy = true;
  const SamplingParams& s = g;
  auto c2 = dec.new_cache(emb.rows() + 24);
  r.greedy = generate(dec, *c2, prefill(dec, *c2, emb, false), 16, s, {});
  return r;
}

void check_same(const Run& got, const Run& want, double tol) {
  const double err = test::rel_error(got.logits, want.logits);
  INFO("logits relative error " << err);
  CHECK(err <= tol);
  CHECK(got.greedy == want.greedy);
}

}  // namespace

TEST_CASE("decoder goldens: pipeline over 2 and 3 devices and tensor over 2 equal one device", "[parallel]") {
  for (const char* name : {"qwen2-tiny", "qwen3-tiny", "llama-tiny"}) {
    INFO(name);
    const Run one = run_text(name, "cpu:0", Parallel::Single);
    check_same(run_text(name, "cpu:0,cpu:1", Parallel::Pipeline), one, 1e-6);
    check_same(run_text(name, "cpu:0,cpu:1,cpu:2", Parallel::Pipeline), one, 1e-6);
    check_same(run_text(name, "cpu:0,cpu:1", Parallel::Tensor), one, 1e-5);
  }
}

TEST_CASE("MiniCPM-V tiny: pipeline and tensor layouts equal one device, vision elsewhere", "[parallel][minicpmv]") {
  const Run one = run_vision("cpu:0", Parallel::Single);
  check_same(run_vision("cpu:0,cpu:1", Parallel::Pipeline), one, 1e-6);
  // Two layers over three devices: the middle one holds only the vision tower and resampler.
  check_same(run_vision("cpu:0,cpu:1,cpu:2", Parallel::Pipeline, {1, 0, 1}), one, 1e-6);
  check_same(run_vision("cpu:0,cpu:1", Parallel::Tensor), one, 1e-5);
}

TEST_CASE("the decoder refuses tensor parallelism when heads do not divide", "[parallel][errors]") {
  std::vector<std::shared_ptr<kernels::Device>> three;
  for (int i = 0; i < 3; ++i) three.push_back(kernels::make_device({kernels::DeviceId::Kind::CPU, i}));
  CHECK_THROWS_WITH(CausalLm::load(test::data("qwen2-tiny"),
                                   [&](const LlmConfig& c) { return DecoderPlacement::tensor_parallel(three, c.n_layers); }),
                    Catch::Contains("must both divide by 3"));
}

TEST_CASE("a tensor-parallel KV cache holds each rank's heads", "[parallel]") {
  auto lm = CausalLm::load(test::data("llama-tiny"), planned("llama-tiny", "cpu:0,cpu:1", Parallel::Tensor));
  auto pool = lm->decoder().new_pool(3, false);
  const auto& c = lm->decoder().config();
  CHECK(pool->k(0, 1).cols() == c.kv_width() / 2);
  CHECK(&pool->k(0, 1).device() != &pool->k(0, 0).device());
  size_t bytes = 0;
  for (int layer = 0; layer < c.n_layers; ++layer)
    for (int rank = 0; rank < 2; ++rank) bytes += pool->k(layer, rank).nbytes() + pool->v(layer, rank).nbytes();
  CHECK(bytes == size_t(2 * c.n_layers * 3 * kBlockTokens * c.kv_width() * 4));
  // The planner's unit: one block on each rank holds its half of the heads of every layer.
  const auto& ranks = lm->decoder().placement().tp_devices;
  CHECK(lm->decoder().block_bytes(*ranks[0]) == 2 * c.n_layers * kBlockTokens * (c.kv_width() / 2) * 4);
}

TEST_CASE("load progress counts each tensor once under tensor parallelism and ends at 100 %", "[parallel]") {
  // Ranks load shards of some tensors and copies of others; progress must still add up.
  for (Parallel par : {Parallel::Single, Parallel::Tensor}) {
    LoadProgress last;
    int calls = 0;
    auto lm = CausalLm::load(test::data("qwen2-tiny"), planned("qwen2-tiny", par == Parallel::Single ? "cpu:0" : "cpu:0,cpu:1", par),
                             [&](const LoadProgress& p) {
                               CHECK(p.done_tensors <= p.total_tensors);
                               CHECK(p.done_bytes <= p.total_bytes);
                               last = p;
                               ++calls;
                             });
    CHECK(calls > 0);
    CHECK(last.total_tensors > 0);
    CHECK(last.done_tensors == last.total_tensors);
    CHECK(last.done_bytes == last.total_bytes);
  }
}

TEST_CASE("a vision model's load progress knows its whole total from the first report", "[parallel]") {
  // Decoder, vision tower and resampler are all announced before any loads, so the
  // percentage climbs to 100 once instead of restarting per part.
  for (Parallel par : {Parallel::Pipeline, Parallel::Tensor}) {
    std::vector<LoadProgress> seen;
    auto m = ChatModel::load(test::data("minicpmv26-tiny"), planned("minicpmv26-tiny", "cpu:0,cpu:1", par),
                             [&](const LoadProgress& p) { seen.push_back(p); });
    REQUIRE(seen.size() > 2);
    for (size_t i = 1; i < seen.size(); ++i) {
      CHECK(seen[i].total_bytes == seen[0].total_bytes);
      CHECK(seen[i].done_bytes >= seen[i - 1].done_bytes);
    }
    CHECK(seen.back().done_bytes == seen.back().total_bytes);
    CHECK(seen.back().done_tensors == seen.back().total_tensors);
  }
}
