#pragma once
// How a cpu device keeps a model's weight matrices (--cpu-weights, TOML cpu_weights).
// Decode on a CPU is bound by reading the weights once per token, so bytes per weight
// decide its speed; activations and sums stay float32 whatever the weights are.
#include <string>
#include <string_view>

namespace omni::kernels {

enum class CpuWeights : unsigned char {
  F32,    // float32 copies: the reference path the goldens hold
  BF16,   // 16 bits as released: bf16 and f16 read from the checkpoint's map, f32 rounded to bf16
  Int8,   // Q8_0 blocks (kernels/dtype.h) quantized at load
};

std::string_view to_string(CpuWeights w);   // "f32" | "bf16" | "int8"
// Throws std::invalid_argument naming the text and the choices.
CpuWeights parse_cpu_weights(std::string_view text);

}  // namespace omni::kernels
