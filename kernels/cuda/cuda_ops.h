#pragma once
// CudaOps: every op of kernels/ops.h on one GPU. Storage is bf16 (F32 tensors are
// accepted too, e.g. inv_freq), arithmetic accumulates in fp32: cuBLAS for linear,
// small fused kernels for the rest, and one flash-style attention kernel (online
// softmax over key tiles in shared memory) that splits the keys across blocks when
// there are few query rows (decode), merging the partial softmaxes in a second pass.
#include <cstdint>

#include "kernels/ops.h"

namespace omni::kernels {

class CudaDevice;

class CudaOps final : public Ops {
 public:
  explicit CudaOps(CudaDevice& dev);
  ~CudaOps() override;
  CudaOps(const CudaOps&) = delete;
  CudaOps& operator=(const CudaOps&) = delete;

  void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) override;
  void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& y) override;
  void layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, float eps, Tensor& y) override;
  void rope(Tensor& x, const Tensor& positions, const Tensor& inv_freq, int n_heads, int head_dim) override;
  using Ops::attention;
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, const AttentionArgs& args,
                 const AttentionLayout& layout) override;
  // The rows are not checked on the device: they come from the caller's block tables.
  void write_rows(const Tensor& src, const Tensor& rows, Tensor& dst) override;
  void silu_mul(const Tensor& gate, const Tensor& up, Tensor& y) override;
  void gelu_tanh(Tensor& x) override;
  void add(const Tensor& a, const Tensor& b, Tensor& y) override;
  void embedding(const Tensor& table, const Tensor& ids, Tensor& y) override;
  void copy(const Tensor& src, Tensor& dst) override;

  // Not part of Ops (benchmarks): fills x with uniform values in [-scale, scale) from `seed`.
  void fill_uniform(Tensor& x, uint64_t seed, float scale);
  // Key splits the attention kernel would use for these sizes (exposed for tests):
  // Tq query rows in all, Tk keys of the longest sequence.
  int attention_splits(int64_t Tq, int64_t Tk, const AttentionArgs& args) const;
  // Forces the split count (0 = automatic); tests use it to cover the merge path.
  void set_attention_splits(int n) { forced_splits_ = n; }

 private:
  CudaDevice& dev_;
  void* cublas_ = nullptr;   // cublasHandle_t
  int forced_splits_ = 0;
};

}  // namespace omni::kernels
