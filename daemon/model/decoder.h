#pragma once
// The causal decoder shared by Qwen2, Qwen3 and Llama (and the LLM inside MiniCPM-V),
// written once against kernels::Ops. Layers may sit on different devices (pipeline
// placement); hidden states follow the layers from device to device.
//
// A forward call takes a batch of sequences, each contributing some new tokens (a
// prompt to prefill or one decode token): their rows are concatenated so the GEMMs
// run once per layer for the whole batch, and attention runs per sequence.
#include <memory>
#include <string>
#include <vector>

#include "kernels/tensor.h"
#include "model/kv_cache.h"
#include "model/llm_config.h"
#include "model/weight_loader.h"

namespace omni {

struct DecoderPlacement {
  std::shared_ptr<kernels::Device> embed_device;
  std::vector<std::shared_ptr<kernels::Device>> layer_devices;  // one per layer
  std::shared_ptr<kernels::Device> head_device;                 // final norm and lm_head
  static DecoderPlacement single(const std::shared_ptr<kernels::Device>& dev, int n_layers);
};

// One sequence's share of a batch: its cache and how many new rows it brings.
struct SeqSlice {
  KvCache* cache = nullptr;
  int64_t n_tokens = 0;
};

class Decoder {
 public:
  // `prefix` is prepended to every tensor name ("llm." inside MiniCPM-V).
  Decoder(WeightLoader& loader, const LlmConfig& cfg, const std::string& prefix, DecoderPlacement placement);

  const LlmConfig& config() const { return cfg_; }
  const DecoderPlacement& placement() const { return place_; }

  // Token embeddings [T, hidden] on the embedding device.
  kernels::Tensor embed(const std::vector<int32_t>& ids) const;
  // Runs every layer over `hidden` ([sum n_tokens, hidden], left unchanged) and appends to the caches.
  // Returns the last layer's output on the head device (before the final norm).
  kernels::Tensor forward(kernels::Tensor hidden, const std::vector<SeqSlice>& seqs) const;
  // Final norm and lm_head: [R, vocab] float32 logits on the host.
  std::vector<float> logits(const kernels::Tensor& hidden) const;
  // A cache for one sequence of up to `capacity` tokens, on the layers' devices.
  std::unique_ptr<KvCache> new_cache(int64_t capacity) const;

 private:
  struct Layer {
    kernels::Tensor attn_norm, wq, wk, wv, wo, bq, bk, bv, q_norm, k_norm;
    kernels::Tensor mlp_norm, w_gate, w_up, w_down;
  };
  void run_layer(int l, kernels::Tensor& hidden, const kernels::Tensor& positions,
                 const std::vector<SeqSlice>& seqs) const;

  LlmConfig cfg_;
  DecoderPlacement place_;
  kernels::Tensor embed_tokens_, final_norm_, lm_head_;
  std::vector<kernels::Tensor> inv_freq_;   // per layer, on the layer's device
  std::vector<Layer> layers_;
};

}  // namespace omni
