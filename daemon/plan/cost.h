#pragma once
// The planner's cost model: bytes each part needs on a device and the relative compute
// each costs per token, from the config alone. See docs/parallelism.md for the reasoning.
#include <cstdint>

#include "kernels/device.h"
#include "plan/model_shape.h"

namespace omni::plan {

// Bytes per activation, KV or norm element on a device: its compute dtype (f32 on cpu, bf16 on cuda).
int64_t elem_bytes(const kernels::DeviceId& id);

// Parameters of a part, split into the weight matrices (linear layers' weights and
// embedding tables: what a device keeps in its weight dtype, model/weight_loader.h) and
// everything else (norms, biases, position tables, queries: the compute dtype).
struct Params {
  int64_t matrix = 0, other = 0;
  int64_t total() const { return matrix + other; }
  Params& operator+=(const Params& p) { matrix += p.matrix; other += p.other; return *this; }
  friend Params operator+(Params a, const Params& b) { return a += b; }
  friend Params operator*(int64_t n, Params p) { p.matrix *= n; p.other *= n; return p; }
};

// What parameters take on a device: matrices in the device's weight dtype (a cpu device's
// cpu_weights rule, kernels/cpu_weights.h, applied to the checkpoint's dtype), the rest in
// its compute dtype.
int64_t param_bytes(const Params& p, const kernels::DeviceId& id, kernels::CpuWeights cpu_weights, kernels::DType released);

struct Workload {
  int64_t context = 4096;   // tokens per sequence (prompt + answer)
  int concurrency = 1;      // sequences decoding together
  int64_t kv_tokens = 0;    // KV cache size; 0: context x concurrency
  // The KV pool in blocks of kBlockTokens (model/kv_pool.h): what the planner budgets and
  // the daemon allocates. Sequences share it, taking blocks as they grow.
  int64_t kv_blocks() const;
};

class CostModel {
 public:
  CostModel(const ModelShape& m, Workload w) : m_(m), w_(w) {}

  // Parameters (elements). `tp` > 1: one rank's share of a layer (norms stay whole).
  Params layer_params(int tp = 1) const;
  Params embed_params() const { return {m_.llm.embed_params(), 0}; }
  Params lm_head_params() const { return {int64_t(m_.llm.vocab) * m_.llm.hidden, 0}; }
  Params final_norm_params() const { return {0, m_.llm.hidden}; }
  Params vision_params() const;      // 0 without vision
  Params resampler_params() const;   // 0 without vision

  // KV cache elements of one layer for the whole pool (a rank's share under tp).
  int64_t kv_elems_per_layer(int tp = 1) const;
  // Scratch elements while a stage runs: one whole prompt prefilled at once through a layer.
  int64_t layer_workspace_elems(int tp = 1) const;
  int64_t head_workspace_elems() const;     // final norm rows and float logits
  int64_t vision_workspace_elems() const;   // one picture piece through the tower

  // Relative compute per token (multiply-adds): weights touched plus attention over the context.
  double layer_cost(int tp = 1) const;
  double lm_head_cost() const { return double(lm_head_params().total()); }
  double vision_cost() const { return double((vision_params() + resampler_params()).total()); }

  const ModelShape& shape() const { return m_; }
  const Workload& workload() const { return w_; }

 private:
  const ModelShape& m_;
  Workload w_;
};

}  // namespace omni::plan
