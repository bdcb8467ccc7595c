#pragma once
// What `omnid plan` says about a checkpoint's quantized weights: how many tensors are
// bitsandbytes NF4, their bytes in the files, and what dequantizing them at load costs
// (checkpoint/bnb_nf4.h: the engine runs them as their quant state's dtype, so a device
// holds them at full size, as the plan's weight bytes count them). Reads the safetensors
// headers and quant states only, never a weight.
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace omni {
class Checkpoint;
}

namespace omni::plan {

struct QuantizationSummary {
  int nf4_tensors = 0;
  int tensors = 0;                     // all tensors of the checkpoint, for scale
  int64_t file_bytes = 0;              // the NF4 weights' codes, scales and tables
  int64_t dequantized_bytes = 0;       // the same weights dequantized
  int64_t largest_dequantized_bytes = 0;   // the host holds one at a time while loading
  std::string dtype;                   // what they dequantize to ("BF16"; "mixed" if several)

  static QuantizationSummary of(const Checkpoint& ck);
  // The checkpoint in `dir`, or nothing when the folder holds no weights (a config alone).
  static std::optional<QuantizationSummary> from_dir(const std::string& dir);

  nlohmann::json json() const;
  std::string line() const;   // one line for the plan's table
};

}  // namespace omni::plan
