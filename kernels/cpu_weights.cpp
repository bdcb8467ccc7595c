#include "kernels/cpu_weights.h"

#include <stdexcept>

namespace omni::kernels {

std::string_view to_string(CpuWeights w) {
  switch (w) {
    case CpuWeights::F32: return "f32";
    case CpuWeights::BF16: return "bf16";
    case CpuWeights::Int8: return "int8";
  }
  return "?";
}

CpuWeights parse_cpu_weights(std::string_view text) {
  for (CpuWeights w : {CpuWeights::F32, CpuWeights::BF16, CpuWeights::Int8})
    if (text == to_string(w)) return w;
  throw std::invalid_argument("cpu weights '" + std::string(text) + "': expected f32, bf16 or int8");
}

}  // namespace omni::kernels
