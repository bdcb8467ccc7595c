#include "plan/cost.h"

#include "model/kv_pool.h"

namespace omni::plan {

int64_t elem_bytes(const kernels::DeviceId& id) { return id.kind == kernels::DeviceId::Kind::CPU ? 4 : 2; }

int64_t param_bytes(const Params& p, const kernels::DeviceId& id, kernels::CpuWeights cpu_weights, kernels::DType released) {
  const int64_t other = p.other * elem_bytes(id);
  if (id.kind != kernels::DeviceId::Kind::CPU) return other + p.matrix * elem_bytes(id);
  // Rows of a multiple of 32 (every model's widths): Q8_0's 34 bytes per 32 weights are exact.
  const kernels::DType w = kernels::cpu_weight_dtype(cpu_weights, released);
  return other + (w == kernels::DType::Q8_0 ? (p.matrix / kernels::kQ8Block) * int64_t(kernels::row_bytes(w, kernels::kQ8Block))
                                            : p.matrix * int64_t(kernels::dtype_size(w)));
}

Params CostModel::layer_params(int tp) const {
  const LlmConfig& c = m_.llm;
  const int64_t norms = 2 * int64_t(c.hidden) + (c.qk_norm ? 2 * c.head_dim : 0);
  const int64_t bias = c.qkv_bias ? c.q_width() + 2 * c.kv_width() : 0;
  const int64_t matrices = c.layer_params() - norms - bias;
  return {matrices / tp, bias / tp + norms};
}

Params CostModel::vision_params() const {
  if (!m_.vision) return {};
  const VisionConfig& v = *m_.vision;
  const int64_t H = v.hidden, F = v.ffn, P = v.patch_size;
  // q, k, v, out projections and fc1, fc2 are matrices (model/vision_tower.cpp); the patch
  // convolution, position table, biases and norms are not.
  const int64_t embed = 3 * P * P * H + H + v.num_positions() * H;
  const int64_t matrices = 4 * H * H + 2 * F * H;
  const int64_t others = 4 * H + F + H + 4 * H;
  return {v.n_layers * matrices, embed + v.n_layers * others + 2 * H};
}

Params CostModel::resampler_params() const {
  if (!m_.vision) return {};
  const int64_t D = m_.llm.hidden, KV = m_.vision->hidden;
  // kv_proj, the attention's in and out projections and proj (model/resampler.cpp).
  return {D * KV + 3 * D * D + D * D + D * D, int64_t(m_.query_num) * D + 3 * D + D + 6 * D};
}

int64_t Workload::kv_blocks() const { return blocks_for(kv_tokens > 0 ? kv_tokens : context * int64_t(concurrency)); }

int64_t CostModel::kv_elems_per_layer(int tp) const {
  return 2 * w_.kv_blocks() * kBlockTokens * (m_.llm.kv_width() / tp);
}

int64_t CostModel::layer_workspace_elems(int tp) const {
  const LlmConfig& c = m_.llm;
  // residual copy, norm output, o-proj output + per-rank q, k, v, attention output, gate, up.
  const int64_t per_row = 3 * int64_t(c.hidden) + (2 * c.q_width() + 2 * c.kv_width() + 2 * int64_t(c.ffn)) / tp;
  return w_.context * per_row;
}

int64_t CostModel::head_workspace_elems() const {
  return w_.context * int64_t(m_.llm.hidden) + int64_t(w_.concurrency) * m_.llm.vocab;
}

int64_t CostModel::vision_workspace_elems() const {
  if (!m_.vision) return 0;
  const VisionConfig& v = *m_.vision;
  return v.num_positions() * (6 * int64_t(v.hidden) + int64_t(v.ffn)) +
         int64_t(m_.query_num) * 4 * m_.llm.hidden;
}

double CostModel::layer_cost(int tp) const {
  // Per token: the weights once, plus q·k and p·v over half the context on average.
  return double(layer_params(tp).total()) + double(w_.context) * double(m_.llm.q_width() / tp);
}

}  // namespace omni::plan
