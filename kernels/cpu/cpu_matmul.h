#pragma once
// The CPU's linear layer for every weight dtype a cpu device keeps (kernels/cpu_weights.h):
// y[M,N] = x[M,K] · w[N,K]ᵀ (+ bias[N]), x and y float32, w F32, BF16, F16 or Q8_0.
//   - M <= small_batch_rows(w's dtype) (decode: one row per sequence): each weight row is read once,
//     widened in registers and dotted with every x row (kernels/cpu/simd/row_dots.h), the
//     rows of w split among the device's threads. Bound by reading the weights.
//   - larger M (prefill, the vision tower): w in tiles of rows, each tile widened to
//     float32 (unless it is already) and multiplied by OpenBLAS's sgemm, tiles split among
//     the threads. Bound by arithmetic.
// Threads: the calling device's OpenMP team of cpu_threads(); OpenBLAS runs single-threaded
// inside it (kernels/cpu/cpu_threads.h), so one pool computes per device.
#include <cstdint>

#include "kernels/tensor.h"

namespace omni::kernels {

// The most rows the row-dot path takes for weights of `t`: the measured crossover of the
// two paths (bench/bench_cpu_matmul.cpp, docs/PERFORMANCE.md "CPU weights"). Narrower
// weights move it up: widening a tile for sgemm costs more than the row dots save.
constexpr int64_t small_batch_rows(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::BF16:
    case DType::F16: return 8;
    case DType::Q8_0: return 24;
    case DType::I32: return 0;
  }
  return 0;
}

void cpu_matmul(const float* x, int64_t M, int64_t K, const Tensor& w, const float* bias, float* y);

// The same on the path `small` names, whatever M is (tests and the crossover benchmark).
void cpu_matmul_path(const float* x, int64_t M, int64_t K, const Tensor& w, const float* bias, float* y, bool small);

}  // namespace omni::kernels
