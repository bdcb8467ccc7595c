// The sampler: greedy, temperature, top-k, top-p, repetition penalty and seeds behave
// as transformers' processors do, and bad settings are refused by name.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>

#include "model/sampler.h"

using namespace omni;

namespace {
const std::vector<float> kLogits = {1.0f, 3.0f, 2.5f, -1.0f, 0.0f, 2.9f};
}

TEST_CASE("greedy takes the argmax", "[sampler]") {
  SamplingParams p;
  p.greedy = true;
  Sampler s(p);
  CHECK(s.next(kLogits.data(), int(kLogits.size()), {}) == 1);
}

TEST_CASE("the repetition penalty divides positive and multiplies negative logits of seen tokens", "[sampler]") {
  SamplingParams p;
  p.greedy = true;
  p.repetition_penalty = 1.05f;   // 3.0 / 1.05 = 2.857 < 2.9
  Sampler s(p);
  CHECK(s.next(kLogits.data(), int(kLogits.size()), {1}) == 5);
  CHECK(s.next(kLogits.data(), int(kLogits.size()), {1, 1, 1}) == 5);   // once per distinct token
  std::vector<float> neg = {-1.0f, -1.02f};
  SamplingParams q;
  q.greedy = true;
  q.repetition_penalty = 1.05f;   // -1 * 1.05 = -1.05 < -1.02
  Sampler s2(q);
  CHECK(s2.next(neg.data(), 2, {0}) == 1);
}

TEST_CASE("top_k = 1 and a tiny top_p are argmax", "[sampler]") {
  SamplingParams p;
  p.top_k = 1;
  p.seed = 7;
  Sampler a(p);
  for (int i = 0; i < 50; ++i) CHECK(a.next(kLogits.data(), int(kLogits.size()), {}) == 1);
  SamplingParams q;
  q.top_p = 0.01f;
  Sampler b(q);
  for (int i = 0; i < 50; ++i) CHECK(b.next(kLogits.data(), int(kLogits.size()), {}) == 1);
}

TEST_CASE("top_k keeps only the k best tokens", "[sampler]") {
  SamplingParams p;
  p.top_k = 3;   // tokens 1, 5, 2
  p.seed = 3;
  Sampler s(p);
  for (int i = 0; i < 300; ++i) {
    int32_t t = s.next(kLogits.data(), int(kLogits.size()), {});
    CHECK((t == 1 || t == 5 || t == 2));
  }
}

TEST_CASE("top_p keeps the smallest set reaching the mass", "[sampler]") {
  // probabilities ~ softmax: token 1 and 5 together exceed 0.5 but neither alone does
  SamplingParams p;
  p.top_p = 0.5f;
  p.seed = 11;
  Sampler s(p);
  std::map<int32_t, int> seen;
  for (int i = 0; i < 400; ++i) seen[s.next(kLogits.data(), int(kLogits.size()), {})]++;
  CHECK(seen.size() == 2);
  CHECK(seen.count(1));
  CHECK(seen.count(5));
}

TEST_CASE("sampling follows the softmax at the given temperature", "[sampler]") {
  const std::vector<float> l = {0.0f, std::log(3.0f)};   // p = 1/4, 3/4 at temperature 1
  SamplingParams p;
  p.seed = 5;
  Sampler s(p);
  int ones = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) ones += s.next(l.data(), 2, {}) == 1;
  CHECK(std::abs(double(ones) / n - 0.75) < 0.02);
  SamplingParams hot;
  hot.temperature = 1000.0f;   // nearly uniform
  hot.seed = 5;
  Sampler h(hot);
  ones = 0;
  for (int i = 0; i < n; ++i) ones += h.next(l.data(), 2, {}) == 1;
  CHECK(std::abs(double(ones) / n - 0.5) < 0.02);
}

TEST_CASE("the same seed gives the same tokens, another seed others", "[sampler]") {
  std::vector<float> flat(64, 0.0f);
  auto draw = [&](uint64_t seed) {
    SamplingParams p;
    p.seed = seed;
    Sampler s(p);
    std::vector<int32_t> out;
    for (int i = 0; i < 32; ++i) out.push_back(s.next(flat.data(), 64, {}));
    return out;
  };
  CHECK(draw(42) == draw(42));
  CHECK(draw(42) != draw(43));
}

TEST_CASE("bad sampling settings are refused by name", "[sampler]") {
  SamplingParams p;
  p.temperature = 0.0f;
  CHECK_THROWS_WITH(Sampler(p), Catch::Contains("temperature"));
  p = {};
  p.top_p = 1.5f;
  CHECK_THROWS_WITH(Sampler(p), Catch::Contains("top_p"));
  p = {};
  p.top_k = -1;
  CHECK_THROWS_WITH(Sampler(p), Catch::Contains("top_k"));
  p = {};
  p.repetition_penalty = 0.0f;
  CHECK_THROWS_WITH(Sampler(p), Catch::Contains("repetition_penalty"));
}
