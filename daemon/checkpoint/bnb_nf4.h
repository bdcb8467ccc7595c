#pragma once
// bitsandbytes 4-bit (NF4) weights as transformers saves them (the official MiniCPM-V
// "-int4" releases): a quantized Linear weight `W` is stored as
//   W                                   U8, the 4-bit codes packed two a byte, high nibble first
//   W.absmax                            F32 scale per block of `blocksize` elements, or, nested
//                                       ("double quant"), U8 codes of the scales with
//   W.nested_absmax, W.nested_quant_map F32 scale per block of `nested_blocksize` scales, and
//                                       the 256-entry code table of the scales
//   W.quant_map                         F32, the 16 NF4 values
//   W.quant_state.bitsandbytes__nf4     U8, the bytes of a JSON object: quant_type, blocksize,
//                                       dtype, shape, nested_blocksize, nested_dtype, nested_offset
// (bitsandbytes' QuantState.as_dict(packed=True)). Element i of W (row-major in `shape`) is
//   quant_map[code i] * absmax[i / blocksize]
// with, nested, absmax[b] = nested_quant_map[u8 b] * nested_absmax[b / nested_blocksize]
// + nested_offset, all in float32 and rounded once to `dtype` (round to nearest even): what
// bitsandbytes' dequantize_4bit computes. Every part is checked before anything is read.
#include <cstdint>
#include <string>
#include <vector>

#include "checkpoint/safetensors.h"
#include "kernels/dtype.h"

namespace omni {

// The suffix of the tensor holding the JSON quant state, per quant type.
inline constexpr const char* kBnbQuantStateSuffix = ".quant_state.bitsandbytes__";

struct Nf4QuantState {
  int64_t blocksize = 0;
  kernels::DType dtype = kernels::DType::BF16;   // what the weight dequantizes to
  std::vector<int64_t> shape;
  bool nested = false;
  int64_t nested_blocksize = 0;
  float nested_offset = 0;

  int64_t numel() const;
  int64_t blocks() const { return (numel() + blocksize - 1) / blocksize; }
};

// Parses the quant state JSON of `weight` (`bytes` of tensor `state_tensor`); throws
// omni::Error naming the tensor and the field for anything not NF4 as described above.
Nf4QuantState parse_nf4_quant_state(const std::string& bytes, const std::string& state_tensor);

// One NF4 weight's tensors, checked against its quant state.
struct Nf4Weight {
  std::string name;             // the weight's name, e.g. "llm.model.layers.0.mlp.up_proj.weight"
  Nf4QuantState state;
  const TensorView* packed = nullptr;
  const TensorView* absmax = nullptr;
  const TensorView* quant_map = nullptr;
  const TensorView* nested_absmax = nullptr;     // nested only
  const TensorView* nested_quant_map = nullptr;  // nested only

  // Bytes of the dequantized weight.
  size_t dequantized_bytes() const { return size_t(state.numel()) * kernels::dtype_size(state.dtype); }
  // Bytes of its tensors in the files.
  size_t file_bytes() const;
  // Throws omni::Error naming the tensor when a part is missing, of the wrong dtype or size,
  // or when quant_map is not the NF4 table.
  void check() const;
  // Writes the whole weight, dequantized, into `out` (dequantized_bytes() bytes).
  void dequantize(void* out) const;
};

// The 16 NF4 values (bitsandbytes' get_4bit_type("nf4")), a saved quant_map must hold them.
const float* nf4_table();

}  // namespace omni
