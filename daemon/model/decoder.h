#pragma once
// The causal decoder shared by Qwen2, Qwen3 and Llama (and the LLM inside MiniCPM-V),
// written once against kernels::Ops. Layers may sit on different devices (pipeline
// placement); hidden states follow the layers from device to device. Or every layer is
// split over the ranks of a tensor-parallel group (heads and MLP columns per rank, an
// all-reduce after o_proj and down_proj); see docs/parallelism.md.
//
// A forward call takes a batch of sequences, each contributing some new tokens (a
// prompt chunk to prefill or one decode token): their rows are concatenated so every
// op runs once per layer for the whole batch. Keys and values go to a paged KV pool
// (model/kv_pool.h); one attention call per layer covers every sequence of the batch,
// each through its block table. Positions, pool rows and block tables reach each
// device once per step.
#include <memory>
#include <string>
#include <vector>

#include "kernels/comm.h"
#include "kernels/tensor.h"
#include "model/kv_pool.h"
#include "model/llm_config.h"
#include "model/weight_loader.h"

namespace omni {

struct DecoderPlacement {
  std::shared_ptr<kernels::Device> embed_device;
  std::vector<std::shared_ptr<kernels::Device>> layer_devices;  // one per layer
  std::shared_ptr<kernels::Device> head_device;                 // final norm and lm_head
  // Tensor parallel when this lists two or more ranks: rank 0 also holds the embeddings,
  // norms and lm_head (embed/head/layer devices must all be rank 0's).
  std::vector<std::shared_ptr<kernels::Device>> tp_devices;
  std::shared_ptr<kernels::Communicator> comm;                  // made for tp_devices when null
  std::shared_ptr<kernels::Device> vision_device;               // ChatModel: null means embed_device
  // ChatModel: more devices with a copy of the vision tower and resampler each; a prompt's
  // pictures are split among these and vision_device (model/vision_encoder.h).
  std::vector<std::shared_ptr<kernels::Device>> vision_copies;
  // Pipeline: the first layer of each stage (the plan's device entries, so cuda:0,cuda:0 is
  // two stages on one GPU). Empty: a new stage wherever the layer device changes.
  std::vector<int> stage_starts;

  static DecoderPlacement single(const std::shared_ptr<kernels::Device>& dev, int n_layers);
  static DecoderPlacement tensor_parallel(const std::vector<std::shared_ptr<kernels::Device>>& ranks, int n_layers);
  int tp_size() const { return tp_devices.size() > 1 ? int(tp_devices.size()) : 1; }
  // Every distinct device the placement uses, in first-use order (for status and metrics).
  std::vector<std::shared_ptr<kernels::Device>> devices() const;
};

// One sequence's share of a batch: its KV sequence and how many new rows it brings.
struct SeqSlice {
  KvSequence* cache = nullptr;
  int64_t n_tokens = 0;
};

// A pipeline stage: contiguous layers on one device (tensor parallel: one stage, all layers).
struct DecoderStage {
  int first_layer = 0, last_layer = 0;
  std::shared_ptr<kernels::Device> device;
};

class Decoder {
 public:
  // `prefix` is prepended to every tensor name ("llm." inside MiniCPM-V).
  Decoder(WeightLoader& loader, const LlmConfig& cfg, const std::string& prefix, DecoderPlacement placement);
  // Announces the tensors the constructor will load, so that load progress has its total
  // before anything loads (a model of several parts plans them all first).
  static void plan_weights(WeightLoader& loader, const LlmConfig& cfg, const std::string& prefix);

  const LlmConfig& config() const { return cfg_; }
  const DecoderPlacement& placement() const { return place_; }

  // Token embeddings [T, hidden] on the embedding device.
  kernels::Tensor embed(const std::vector<int32_t>& ids) const;
  // Runs every layer over `hidden` ([sum n_tokens, hidden], left unchanged) and appends to the
  // sequences (taking the blocks they need; throws when their pool has too few).
  // Returns the last layer's output on the head device (before the final norm).
  kernels::Tensor forward(kernels::Tensor hidden, const std::vector<SeqSlice>& seqs) const;

  // The same forward in pieces, for PipelineRunner's stage threads: check_batch (which
  // also takes the blocks the new rows need), then forward_stage for every stage in
  // order, then advance. forward_stage takes `x` by value and may update its storage in
  // place (the residual stream); it writes the stage's layers of the sequences' blocks
  // but does not advance them.
  const std::vector<DecoderStage>& stages() const { return stages_; }
  void check_batch(const kernels::Tensor& hidden, const std::vector<SeqSlice>& seqs) const;
  kernels::Tensor forward_stage(int stage, kernels::Tensor x, const std::vector<SeqSlice>& seqs) const;
  static void advance(const std::vector<SeqSlice>& seqs);
  // Final norm and lm_head: [R, vocab] float32 logits on the host.
  std::vector<float> logits(const kernels::Tensor& hidden) const;
  // A KV pool of n_blocks blocks on the layers' devices (each rank its heads' share).
  std::shared_ptr<KvPool> new_pool(int64_t n_blocks, bool prefix_cache) const;
  // Bytes one block takes on `dev` (its layers, its rank's heads): the planner's unit.
  int64_t block_bytes(const kernels::Device& dev) const;
  // A sequence of up to `capacity` tokens on a pool of its own (tools and tests; the
  // daemon's sequences share one pool).
  std::unique_ptr<KvSequence> new_cache(int64_t capacity) const;

 private:
  // One rank's share of a layer (the whole layer without tensor parallelism).
  struct Layer {
    kernels::Tensor attn_norm, wq, wk, wv, wo, bq, bk, bv, q_norm, k_norm;
    kernels::Tensor mlp_norm, w_gate, w_up, w_down;
  };
  void make_stages();
  void load_layer(WeightLoader& w, const std::string& p, int rank, const std::shared_ptr<kernels::Device>& dev);
  const std::shared_ptr<kernels::Device>& rank_device(int l, int r) const;
  struct StepInputs;
  StepInputs step_inputs(const std::shared_ptr<kernels::Device>& dev, const std::vector<SeqSlice>& seqs) const;
  // x[r], in[r] on rank r's device (one entry without tensor parallelism).
  void run_layer(int l, std::vector<kernels::Tensor>& x, const std::vector<StepInputs>& in,
                 const std::vector<SeqSlice>& seqs) const;
  // Sums the ranks' partial outputs into each rank's residual stream.
  void reduce_add(std::vector<kernels::Tensor>& x, std::vector<kernels::Tensor>& partial) const;

  LlmConfig cfg_;
  DecoderPlacement place_;
  kernels::Tensor embed_tokens_, final_norm_, lm_head_;
  int ranks_ = 1;
  std::vector<kernels::Tensor> inv_freq_;   // [layer * ranks + rank], on that rank's device
  std::vector<Layer> layers_;               // [layer * ranks + rank]
  std::vector<DecoderStage> stages_;
};

}  // namespace omni
