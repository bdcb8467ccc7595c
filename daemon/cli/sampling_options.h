#pragma once
// Sampling flags shared by `omnid run` and `omnid serve` defaults.
#include <CLI/CLI.hpp>
#include <optional>

#include "model/sampler.h"

namespace omni {

struct SamplingOptions {
  bool greedy = false;
  std::optional<float> temperature, top_p, repetition_penalty;
  std::optional<int> top_k;
  uint64_t seed = 0;
  void add_to(CLI::App* cmd);
  // The model's defaults with the given flags laid over them. --greedy is plain argmax
  // (no repetition penalty unless one is given).
  SamplingParams resolve(const SamplingParams& model_defaults) const;
};

}  // namespace omni
