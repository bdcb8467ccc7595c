#include "kernels/cpu/simd/row_dots.h"

#include <vector>

namespace omni::kernels {

RowDotsFn RowDotKernels::for_dtype(DType t) const {
  switch (t) {
    case DType::F32: return f32;
    case DType::BF16: return bf16;
    case DType::F16: return f16;
    case DType::Q8_0: return q8_0;
    case DType::I32: return nullptr;
  }
  return nullptr;
}

namespace {

bool cpu_has_avx512() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("f16c") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

bool cpu_has_avx2() {
#if defined(__x86_64__)
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

const std::vector<const RowDotKernels*>& runnable() {
  static const std::vector<const RowDotKernels*> list = [] {
    std::vector<const RowDotKernels*> out;
    if (const RowDotKernels* k = avx512_row_dots(); k && cpu_has_avx512()) out.push_back(k);
    if (const RowDotKernels* k = avx2_row_dots(); k && cpu_has_avx2()) out.push_back(k);
    out.push_back(&portable_row_dots());
    return out;
  }();
  return list;
}

}  // namespace

const RowDotKernels* const* runnable_row_dot_kernels(int* count) {
  *count = int(runnable().size());
  return runnable().data();
}

const RowDotKernels& row_dot_kernels() { return *runnable().front(); }

}  // namespace omni::kernels
