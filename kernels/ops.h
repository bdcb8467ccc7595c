#pragma once
// The op interface: everything the model code asks of a device. The model (decoder,
// vision tower, resampler) is written once against it; the CPU backend is the fp32
// reference, the CUDA backend implements the same calls in bf16 with fp32 accumulation.
//
// Conventions: tensors are row-major; "rows" are tokens. All tensors passed to one
// call live on the device that owns this Ops. Outputs are preallocated by the caller
// and may not alias inputs unless a call says so.
#include <cstdint>
#include <memory>
#include <vector>

#include "tensor.h"

namespace omni::kernels {

struct AttentionArgs {
  int n_heads = 0;        // query heads
  int n_kv_heads = 0;     // key/value heads (GQA: n_heads % n_kv_heads == 0)
  int head_dim = 0;
  float scale = 1.0f;     // multiplies q·k
  // Dense calls only (the one-sequence form below): query row i may see key rows
  // j <= causal_offset + i; a negative value disables the mask (vision tower, resampler).
  int64_t causal_offset = -1;
};

// One sequence's share of an attention call.
struct AttentionSeq {
  int32_t q_begin = 0, q_rows = 0;   // its rows of q and out
  int32_t kv_len = 0;                // keys it attends to (its context, the new rows included)
  int32_t causal_offset = -1;        // query row i sees keys j <= causal_offset + i; < 0: all kv_len keys
  int32_t table_begin = 0;           // its first entry in block_table
};

// Where every sequence of a call finds its keys: in blocks of block_rows rows of the
// k/v tensors (a paged KV cache). Key j of sequence s is row
// block_table[s.table_begin + j / block_rows] · block_rows + j % block_rows. A dense
// call is one sequence whose single block is the whole k/v.
struct AttentionLayout {
  int32_t block_rows = 0;
  std::vector<AttentionSeq> seqs;
  std::vector<int32_t> block_table;
  // The same numbers as I32 on the device (seqs as 5 ints each, then the table), made
  // once per step by upload() and shared by every layer; a backend that needs them on
  // the device and finds this empty uploads its own copy for the call.
  Tensor on_device;
  void upload(const std::shared_ptr<Device>& dev);
  std::vector<int32_t> packed() const;
  // Throws std::invalid_argument when a sequence's rows or blocks fall outside
  // q (q_rows_total) or k/v (kv_rows); shared by the backends.
  void check(int64_t q_rows_total, int64_t kv_rows) const;
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
  // The one attention op: out[Tq, n_heads·head_dim] = softmax(scale · q kᵀ + mask) v, per
  // head and per sequence of `layout` (prefill chunks and decode rows of many sequences
  // in one call); k, v are [rows, n_kv_heads·head_dim] (a KV pool, or one sequence's keys).
  virtual void attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, const AttentionArgs& args,
                         const AttentionLayout& layout) = 0;
  // The dense form: one sequence, all of k/v, args.causal_offset as its mask.
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, const AttentionArgs& args);
  // dst row rows[i] = src row i (writing new keys/values into a KV pool); rows is I32 [T].
  virtual void write_rows(const Tensor& src, const Tensor& rows, Tensor& dst) = 0;
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
