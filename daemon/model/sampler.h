#pragma once
// Picks the next token from a row of logits: greedy, or sampled after the same
// processors, in the same order, as Hugging Face generate(): repetition penalty,
// temperature, top-k, top-p.
#include <cstdint>
#include <random>
#include <vector>

namespace omni {

struct SamplingParams {
  bool greedy = false;
  float temperature = 1.0f;
  int top_k = 0;                  // 0: off
  float top_p = 1.0f;             // 1: off
  float repetition_penalty = 1.0f;
  uint64_t seed = 0;

  // Throws omni::Error naming the first field out of range.
  void validate() const;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p);
  // `history` holds the tokens the repetition penalty applies to.
  int32_t next(const float* logits, int vocab, const std::vector<int32_t>& history);

 private:
  SamplingParams p_;
  std::mt19937_64 rng_;
  std::vector<float> work_;
  std::vector<int32_t> order_;
};

int32_t argmax(const float* logits, int vocab);

}  // namespace omni
