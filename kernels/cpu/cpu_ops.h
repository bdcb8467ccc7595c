#pragma once
// The reference backend: float32 activations, weight matrices in f32, bf16/f16 or Q8_0
// (kernels/cpu_weights.h) through kernels/cpu/cpu_matmul.h, OpenMP for the loops. Numerics favour exactness over speed (double accumulators in
// norms and softmax sums) because the goldens are computed in float64.
#include "kernels/ops.h"

namespace omni::kernels {

class CpuOps final : public Ops {
 public:
  CpuOps();
  void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) override;
  void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& y) override;
  void layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, float eps, Tensor& y) override;
  void rope(Tensor& x, const Tensor& positions, const Tensor& inv_freq, int n_heads, int head_dim) override;
  using Ops::attention;
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, const AttentionArgs& args,
                 const AttentionLayout& layout) override;
  void write_rows(const Tensor& src, const Tensor& rows, Tensor& dst) override;
  void silu_mul(const Tensor& gate, const Tensor& up, Tensor& y) override;
  void gelu_tanh(Tensor& x) override;
  void add(const Tensor& a, const Tensor& b, Tensor& y) override;
  void embedding(const Tensor& table, const Tensor& ids, Tensor& y) override;
  void copy(const Tensor& src, Tensor& dst) override;
};

}  // namespace omni::kernels
