#pragma once
// How a cpu device keeps a model's weight matrices (--cpu-weights, TOML cpu_weights).
// Decode on a CPU is bound by reading the weights once per token, so bytes per weight
// decide its speed; activations and sums stay float32 whatever the weights are.
#include <string>
#include <string_view>

#include "dtype.h"

namespace omni::kernels {

enum class CpuWeights : unsigned char {
  AsReleased,   // "auto": the checkpoint's own dtype (bf16/f16 read from its map, f32 as f32): lossless
  F32,          // float32 copies: the reference path the goldens hold
  BF16,         // 16 bits: bf16 and f16 as released, f32 rounded to bf16
  Int8,         // Q8_0 blocks (kernels/dtype.h) quantized at load
};

std::string_view to_string(CpuWeights w);   // "auto" | "f32" | "bf16" | "int8"
// Throws std::invalid_argument naming the text and the choices.
CpuWeights parse_cpu_weights(std::string_view text);

// The dtype a cpu device keeps a weight matrix released as `released` in: the one rule
// the cpu device (kernels/cpu/cpu_device.cpp) and the planner's byte counts share.
DType cpu_weight_dtype(CpuWeights w, DType released);

}  // namespace omni::kernels
