#include "cli/sampling_options.h"

namespace omni {

void SamplingOptions::add_to(CLI::App* cmd) {
  cmd->add_flag("--greedy", greedy, "Pick the most likely token at every step");
  cmd->add_option("--temperature", temperature, "Sampling temperature (> 0)");
  cmd->add_option("--top-p", top_p, "Nucleus sampling mass in (0, 1]");
  cmd->add_option("--top-k", top_k, "Keep the k most likely tokens (0: all)");
  cmd->add_option("--repetition-penalty", repetition_penalty, "Penalty for tokens already generated (1: off)");
  cmd->add_option("--seed", seed, "Random seed for sampling");
}

SamplingParams SamplingOptions::resolve(const SamplingParams& d) const {
  SamplingParams p = d;
  if (greedy) {
    p = SamplingParams{};
    p.greedy = true;
  }
  if (temperature) p.temperature = *temperature;
  if (top_p) p.top_p = *top_p;
  if (top_k) p.top_k = *top_k;
  if (repetition_penalty) p.repetition_penalty = *repetition_penalty;
  p.seed = seed;
  p.validate();
  return p;
}

}  // namespace omni
