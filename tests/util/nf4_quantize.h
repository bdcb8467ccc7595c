#pragma once
// Turns a BF16 tensor of a test checkpoint into a bitsandbytes NF4 weight in transformers'
// save format (checkpoint/bnb_nf4.h; plain absmax, blocksize 64), as quantize_4bit picks
// the codes: the nearest NF4 value of w / absmax per block. For NF4 checkpoints made at
// run time from the tiny fixtures; tools/nf4_reference.py makes the committed ones.
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "checkpoint/bnb_nf4.h"
#include "kernels/dtype.h"
#include "util/safetensors_tensors.h"

namespace omni::test {

inline void quantize_nf4(StTensors& tensors, const std::string& name, int64_t blocksize = 64) {
  const StTensor src = tensors.at(name);
  const size_t n = src.data.size() / 2;
  std::vector<float> w(n);
  for (size_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, src.data.data() + 2 * i, 2);
    w[i] = kernels::bf16_to_f32(h);
  }
  const float* code = nf4_table();
  const size_t blocks = (n + size_t(blocksize) - 1) / size_t(blocksize);
  std::string packed((n + 1) / 2, '\0'), absmax(blocks * 4, '\0');
  for (size_t b = 0; b < blocks; ++b) {
    const size_t begin = b * size_t(blocksize), end = std::min(n, begin + size_t(blocksize));
    float m = 0;
    for (size_t i = begin; i < end; ++i) m = std::max(m, std::fabs(w[i]));
    std::memcpy(absmax.data() + 4 * b, &m, 4);
    for (size_t i = begin; i < end; ++i) {
      const float x = m > 0 ? w[i] / m : 0.0f;
      int best = 0;
      for (int k = 1; k < 16; ++k)
        if (std::fabs(x - code[k]) < std::fabs(x - code[best])) best = k;
      packed[i / 2] = char(uint8_t(packed[i / 2]) | (i % 2 == 0 ? best << 4 : best));
    }
  }
  const nlohmann::json state = {{"quant_type", "nf4"}, {"blocksize", blocksize}, {"dtype", "bfloat16"}, {"shape", src.shape}};
  const std::string json = state.dump();
  tensors[name] = {"U8", {int64_t(packed.size()), 1}, packed};
  tensors[name + ".absmax"] = {"F32", {int64_t(blocks)}, absmax};
  tensors[name + ".quant_map"] = {"F32", {16}, std::string(reinterpret_cast<const char*>(code), 64)};
  tensors[name + ".quant_state.bitsandbytes__nf4"] = {"U8", {int64_t(json.size())}, json};
}

}  // namespace omni::test
