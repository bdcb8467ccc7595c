#include "kernels/cpu_weights.h"

#include <stdexcept>

namespace omni::kernels {

std::string_view to_string(CpuWeights w) {
  switch (w) {
    case CpuWeights::AsReleased: return "auto";
    case CpuWeights::F32: return "f32";
    case CpuWeights::BF16: return "bf16";
    case CpuWeights::Int8: return "int8";
  }
  return "?";
}

CpuWeights parse_cpu_weights(std::string_view text) {
  for (CpuWeights w : {CpuWeights::AsReleased, CpuWeights::F32, CpuWeights::BF16, CpuWeights::Int8})
    if (text == to_string(w)) return w;
  throw std::invalid_argument("'" + std::string(text) + "' is not one of auto, f32, bf16, int8");
}

DType cpu_weight_dtype(CpuWeights w, DType released) {
  const bool half = released == DType::BF16 || released == DType::F16;
  switch (w) {
    case CpuWeights::AsReleased: return half ? released : DType::F32;
    case CpuWeights::F32: return DType::F32;
    case CpuWeights::BF16: return half ? released : DType::BF16;
    case CpuWeights::Int8: return DType::Q8_0;
  }
  return DType::F32;
}

}  // namespace omni::kernels
