#pragma once
// A text-only decoder checkpoint (Qwen2, Qwen3, Llama in Hugging Face layout), loaded
// onto its devices, with the prefill / decode-step loop on top of the Decoder.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "model/decoder.h"
#include "model/sampler.h"

namespace omni {

class CausalLm {
 public:
  // Loads `dir`; `placement` maps the config to devices (single device when empty).
  using PlaceFn = std::function<DecoderPlacement(const LlmConfig&)>;
  static std::unique_ptr<CausalLm> load(const std::string& dir, const PlaceFn& place, ProgressFn progress = {});

  const LlmConfig& config() const { return decoder_->config(); }
  const Decoder& decoder() const { return *decoder_; }

 private:
  CausalLm() = default;
  std::unique_ptr<Checkpoint> ckpt_;
  std::unique_ptr<Decoder> decoder_;
};

// transformers' generate() treats prompt tokens equal to its pad_token_id as left padding
// (attention_mask = ids != pad, positions from the mask's cumulative sum), which is the
// same as leaving them out. MiniCPM-V's chat() passes pad_token_id=0, and the reference
// greedy outputs were made that way, so generation paths apply this; pad_id < 0 keeps all.
std::vector<int32_t> drop_pad_tokens(const std::vector<int32_t>& ids, int32_t pad_id);

// Runs `embeds` ([T, hidden]) through the decoder as one prefill of `cache`; returns the
// logits of every row (all_rows) or of the last row only, as [rows × vocab] floats.
std::vector<float> prefill(const Decoder& dec, KvCache& cache, const kernels::Tensor& embeds, bool all_rows);

// Generates up to `max_tokens` tokens after a prefill whose last logits are `last_logits`,
// one decode step at a time. Stops after a token in `stop_ids` (which is included).
// `on_token` may return false to stop early.
std::vector<int32_t> generate(const Decoder& dec, KvCache& cache, std::vector<float> last_logits, int max_tokens,
                              Sampler& sampler, const std::vector<int32_t>& stop_ids,
                              const std::function<bool(int32_t)>& on_token = {},
                              std::vector<int32_t> history = {});

}  // namespace omni
