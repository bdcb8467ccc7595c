#pragma once
// The op interface: everything the model code asks of a device. The model (decoder,
// vision tower, resampler) is written once against it; the CPU backend is the fp32
// reference, the CUDA backend implements the same calls in bf16 with fp32 accumulation.
//
// Conventions: tensors are row-major; "rows" are tokens. All tensors passed to one
// call live on the device that owns this Ops. Outputs are preallocated by the caller
// and may not alias inputs unless a call says so.
#include <cstdint>

#include "tensor.h"

namespace omni::kernels {

struct AttentionArgs {
  int n_heads = 0;        // query heads
  int n_kv_heads = 0;     // key/value heads (GQA: n_heads % n_kv_heads == 0)
  int head_dim = 0;
  float scale = 1.0f;     // multiplies q·k
  // Causal masking: query row i may see key rows j <= causal_offset + i.
  // A negative value disables the causal mask (vision tower, resampler).
  int64_t causal_offset = -1;
};

class Ops {
 public:
  virtual ~Ops() = default;

  // y[M,N] = x[M,K] · w[N,K]ᵀ (+ bias[N]): nn.Linear.
  virtual void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) = 0;
  // y = x / sqrt(mean(x²) + eps) · w, per row of width w.numel() (rows may be heads).
  virtual void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& y) = 0;
  // y = (x − mean) / sqrt(var + eps) · w + b, per row.
  virtual void layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, float eps, Tensor& y) = 0;
  // Rotary embedding in the rotate-half (NeoX) layout, in place, on x [T, n_heads·head_dim]:
  // pair (i, i + head_dim/2) turns by positions[t]·inv_freq[i]. positions is I32 [T],
  // inv_freq F32 [head_dim/2] (the model computes it, so scaling variants stay model code).
  virtual void rope(Tensor& x, const Tensor& positions, const Tensor& inv_freq, int n_heads, int head_dim) = 0;
  // out[Tq, n_heads·head_dim] = softmax(scale · q kᵀ + mask) v, per head; k, v are [Tk, n_kv_heads·head_dim].
  virtual void attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
                         const AttentionArgs& args) = 0;
  // y = silu(gate) ⊙ up.
  virtual void silu_mul(const Tensor& gate, const Tensor& up, Tensor& y) = 0;
  // x = gelu_tanh(x), in place.
  virtual void gelu_tanh(Tensor& x) = 0;
  // y = a + b (y may alias a).
  virtual void add(const Tensor& a, const Tensor& b, Tensor& y) = 0;
  // y[i] = table[ids[i]]; ids is I32 and every id must be < table.rows().
  virtual void embedding(const Tensor& table, const Tensor& ids, Tensor& y) = 0;
  // dst = src, same element count, converting dtype if they differ (both on this device).
  virtual void copy(const Tensor& src, Tensor& dst) = 0;
};

// Copies src into dst across devices (a host bounce on CPU, peer copies on CUDA).
void copy_between(const Tensor& src, Tensor& dst);

}  // namespace omni::kernels
