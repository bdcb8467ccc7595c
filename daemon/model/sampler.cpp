#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "util/error.h"

namespace omni {

void SamplingParams::validate() const {
  if (!(temperature > 0.0f) || !std::isfinite(temperature))
    throw Error("sampling: temperature must be > 0 (got " + std::to_string(temperature) + "); use greedy for argmax");
  if (top_k < 0) throw Error("sampling: top_k must be >= 0 (got " + std::to_string(top_k) + ")");
  if (!(top_p > 0.0f && top_p <= 1.0f)) throw Error("sampling: top_p must be in (0, 1] (got " + std::to_string(top_p) + ")");
  if (!(repetition_penalty > 0.0f) || !std::isfinite(repetition_penalty))
    throw Error("sampling: repetition_penalty must be > 0 (got " + std::to_string(repetition_penalty) + ")");
}

int32_t argmax(const float* logits, int vocab) {
  return static_cast<int32_t>(std::max_element(logits, logits + vocab) - logits);
}

Sampler::Sampler(const SamplingParams& p) : p_(p), rng_(p.seed) { p_.validate(); }

int32_t Sampler::next(const float* logits, int vocab, const std::vector<int32_t>& history) {
  work_.assign(logits, logits + vocab);
  if (p_.repetition_penalty != 1.0f) {
    // HF RepetitionPenaltyLogitsProcessor: each distinct seen token once.
    for (int32_t t : history) {
      if (t < 0 || t >= vocab) continue;
      float& l = work_[size_t(t)];
      l = l > 0 ? logits[t] / p_.repetition_penalty : logits[t] * p_.repetition_penalty;
    }
  }
  if (p_.greedy) return argmax(work_.data(), vocab);

  for (float& l : work_) l /= p_.temperature;
  order_.resize(size_t(vocab));
  std::iota(order_.begin(), order_.end(), 0);
  auto by_logit = [&](int32_t a, int32_t b) { return work_[size_t(a)] > work_[size_t(b)] || (work_[size_t(a)] == work_[size_t(b)] && a < b); };
  size_t keep = size_t(vocab);
  if (p_.top_k > 0 && p_.top_k < vocab) {
    keep = size_t(p_.top_k);
    std::partial_sort(order_.begin(), order_.begin() + std::ptrdiff_t(keep), order_.end(), by_logit);
  } else {
    std::sort(order_.begin(), order_.end(), by_logit);
  }
  // Softmax over the kept candidates (sorted descending).
  const float mx = work_[size_t(order_[0])];
  std::vector<double> prob(keep);
  double sum = 0;
  for (size_t i = 0; i < keep; ++i) sum += prob[i] = std::exp(double(work_[size_t(order_[i])] - mx));
  for (double& x : prob) x /= sum;
  if (p_.top_p < 1.0f) {
    // HF TopPLogitsWarper keeps the smallest set whose mass reaches top_p (at least one).
    double cum = 0;
    size_t n = 0;
    while (n < keep) {
      cum += prob[n++];
      if (cum >= double(p_.top_p)) break;
    }
    keep = n;
    double s = 0;
    for (size_t i = 0; i < keep; ++i) s += prob[i];
    for (size_t i = 0; i < keep; ++i) prob[i] /= s;
  }
  std::uniform_real_distribution<double> uni(0.0, 1.0);
  double r = uni(rng_), acc = 0;
  for (size_t i = 0; i < keep; ++i) {
    acc += prob[i];
    if (r < acc) return order_[i];
  }
  return order_[keep - 1];
}

}  // namespace omni
