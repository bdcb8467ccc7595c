#pragma once
// The inner loop of the CPU's small-batch linear layers (kernels/cpu/cpu_matmul.cpp): one
// weight row, kept in its stored dtype and widened to float32 in registers, against up to
// kMaxDotRows activation rows, so a decode step reads each weight once. One implementation
// per instruction set, each in a file of its own compiled for it (kernels/CMakeLists.txt);
// row_dot_kernels() picks the best the CPU has, once. Those files use no standard-library
// templates: an inline function compiled there for AVX-512 could be the copy the linker
// keeps for the whole program, and run on a CPU without it.
#include <cstdint>

#include "kernels/dtype.h"

namespace omni::kernels {

inline constexpr int kMaxDotRows = 4;

// y[r] = Σ_k w[k] · x[r·ldx + k] for r < rows (1..kMaxDotRows); w is one row of K weights.
using RowDotsFn = void (*)(const void* w, const float* x, int64_t ldx, int rows, int64_t K, float* y);

struct RowDotKernels {
  const char* isa = "";   // "avx512", "avx2", "portable"
  RowDotsFn f32 = nullptr, bf16 = nullptr, f16 = nullptr, q8_0 = nullptr;
  RowDotsFn for_dtype(DType t) const;   // nullptr for I32
};

// Every implementation this CPU can run, best first; the first is what row_dot_kernels() gives.
const RowDotKernels* const* runnable_row_dot_kernels(int* count);
const RowDotKernels& row_dot_kernels();

// The implementations (row_dots_*.cpp); the SIMD ones only when compiled in (x86-64).
const RowDotKernels& portable_row_dots();
const RowDotKernels* avx2_row_dots();
const RowDotKernels* avx512_row_dots();

}  // namespace omni::kernels
