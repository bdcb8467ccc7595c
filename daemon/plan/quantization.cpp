#include "plan/quantization.h"

#include <algorithm>
#include <filesystem>

#include "checkpoint/checkpoint.h"
#include "plan/format.h"

namespace omni::plan {

QuantizationSummary QuantizationSummary::of(const Checkpoint& ck) {
  QuantizationSummary s;
  // Tensors as the engine sees them: an NF4 weight's scales, tables and quant state are part of it.
  s.tensors = int(ck.names().size());
  for (const Nf4Weight* w : ck.nf4_weights()) {
    s.tensors -= w->state.nested ? 5 : 3;
    const std::string dt(kernels::dtype_name(w->state.dtype));
    s.dtype = s.dtype.empty() || s.dtype == dt ? dt : "mixed";
    s.nf4_tensors += 1;
    s.file_bytes += int64_t(w->file_bytes());
    s.dequantized_bytes += int64_t(w->dequantized_bytes());
    s.largest_dequantized_bytes = std::max(s.largest_dequantized_bytes, int64_t(w->dequantized_bytes()));
  }
  return s;
}

std::optional<QuantizationSummary> QuantizationSummary::from_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  if (!fs::exists(fs::path(dir) / "model.safetensors") && !fs::exists(fs::path(dir) / "model.safetensors.index.json"))
    return std::nullopt;
  return of(Checkpoint(dir));
}

nlohmann::json QuantizationSummary::json() const {
  return {{"format", nf4_tensors ? "bitsandbytes-nf4" : "none"},
          {"nf4_tensors", nf4_tensors},
          {"tensors", tensors},
          {"file_bytes", file_bytes},
          {"dequantized_bytes", dequantized_bytes},
          {"dequantized_dtype", dtype},
          {"largest_dequantized_bytes", largest_dequantized_bytes}};
}

std::string QuantizationSummary::line() const {
  if (nf4_tensors == 0) return "";
  return "quantized: " + std::to_string(nf4_tensors) + " of " + std::to_string(tensors) +
         " tensors bitsandbytes NF4, " + format_bytes(file_bytes) + " in the files, dequantized at load (devices " +
         "hold them at full size, as counted above): " + format_bytes(dequantized_bytes) + " of " + dtype +
         " made on the host one weight at a time, a layer's under tensor parallelism (largest weight " +
         format_bytes(largest_dequantized_bytes) + ")\n";
}

}  // namespace omni::plan
