#pragma once
// A text-only decoder checkpoint (Qwen2, Qwen3, Llama in Hugging Face layout), loaded
// onto its devices, with the prefill / decode-step loop on top of the Decoder.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "model/decoder.h"
#include "model/generation.h"
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
std::vector<float> prefill(const Decoder& dec, KvSequence& cache, const kernels::Tensor& embeds, bool all_rows);

// The decode loop of one sequence: samples from `last_logits` (the prompt's last row),
// feeds each token back, until `gen` ends (stop id, stop string, max_tokens) or the cache
// is full (finish reason length). `on_text` gets the text that may be shown, piece by piece.
void decode(const Decoder& dec, KvSequence& cache, std::vector<float> last_logits, Generation& gen,
            const std::function<void(const std::string&)>& on_text = {});

// Ids only, for bare decoders: up to `max_tokens` after a prefill whose last logits are
// `last_logits`, stopping after a token in `stop_ids` (which is included).
std::vector<int32_t> generate(const Decoder& dec, KvSequence& cache, std::vector<float> last_logits, int max_tokens,
                              const SamplingParams& sampling, const std::vector<int32_t>& stop_ids);

}  // namespace omni
