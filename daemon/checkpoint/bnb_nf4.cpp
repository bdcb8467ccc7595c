// Compiled with -ffp-contract=off (daemon/CMakeLists.txt): the nested scale is a product
// and then a sum, two float32 roundings as in bitsandbytes, never one fused multiply-add.
#include "checkpoint/bnb_nf4.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "util/error.h"

namespace omni {

using kernels::DType;

namespace {

// bitsandbytes' NF4 values (functional.py get_4bit_type("nf4")), as float32.
constexpr float kNf4[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

// Float32 element i of an F32 tensor; safetensors data need not be 4-byte aligned.
float f32_at(const TensorView& t, size_t i) {
  float f;
  std::memcpy(&f, t.data + i * 4, 4);
  return f;
}

DType parse_float_dtype(const std::string& s, const std::string& where) {
  if (s == "bfloat16") return DType::BF16;
  if (s == "float16") return DType::F16;
  if (s == "float32") return DType::F32;
  throw Error(where + " is '" + s + "' (supported: bfloat16, float16, float32)");
}

std::string shape_str(const std::vector<int64_t>& shape) {
  TensorView t;
  t.shape = shape;
  return t.shape_str();
}

void write_elem(void* out, DType dt, size_t i, float v) {
  if (dt == DType::F32) {
    std::memcpy(static_cast<uint8_t*>(out) + i * 4, &v, 4);
    return;
  }
  const uint16_t h = dt == DType::BF16 ? kernels::f32_to_bf16(v) : kernels::f32_to_f16(v);
  std::memcpy(static_cast<uint8_t*>(out) + i * 2, &h, 2);
}

}  // namespace

const float* nf4_table() { return kNf4; }

int64_t Nf4QuantState::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Nf4QuantState parse_nf4_quant_state(const std::string& bytes, const std::string& state_tensor) {
  const std::string where = "quant state '" + state_tensor + "'";
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(bytes);
  } catch (const nlohmann::json::exception& e) {
    throw Error(where + ": not JSON: " + e.what());
  }
  if (!j.is_object()) throw Error(where + ": not a JSON object");
  Nf4QuantState s;
  try {
    const std::string type = j.at("quant_type").get<std::string>();
    if (type != "nf4")
      throw Error(where + ": quant_type '" + type + "' is not supported (bitsandbytes nf4 only)");
    s.blocksize = j.at("blocksize").get<int64_t>();
    // bitsandbytes' kernels take 64 to 4096; a larger power of two would dequantize the same way.
    if (s.blocksize <= 0 || s.blocksize > (int64_t(1) << 20))
      throw Error(where + ": blocksize " + std::to_string(s.blocksize) + " is out of range");
    s.dtype = parse_float_dtype(j.at("dtype").get<std::string>(), where + ": dtype");
    const auto& shape = j.at("shape");
    if (!shape.is_array() || shape.empty()) throw Error(where + ": shape is not a non-empty list");
    for (const auto& d : shape) {
      const int64_t v = d.get<int64_t>();
      if (v <= 0 || v > (int64_t(1) << 40)) throw Error(where + ": shape has a bad dimension " + d.dump());
      s.shape.push_back(v);
    }
    if (s.numel() > (int64_t(1) << 40)) throw Error(where + ": shape is too large");
    s.nested = j.contains("nested_blocksize") || j.contains("nested_offset");
    if (s.nested) {
      s.nested_blocksize = j.at("nested_blocksize").get<int64_t>();
      if (s.nested_blocksize <= 0 || s.nested_blocksize > (int64_t(1) << 20))
        throw Error(where + ": nested_blocksize " + std::to_string(s.nested_blocksize) + " is out of range");
      if (j.contains("nested_dtype") && j["nested_dtype"].get<std::string>() != "float32")
        throw Error(where + ": nested_dtype '" + j["nested_dtype"].get<std::string>() +
                    "' is not supported (float32 only)");
      // as_dict writes offset.item() of a float32: the double holds it exactly.
      const double off = j.at("nested_offset").get<double>();
      if (!std::isfinite(off)) throw Error(where + ": nested_offset is not finite");
      s.nested_offset = float(off);
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(where + ": missing or malformed field: " + e.what());
  }
  return s;
}

size_t Nf4Weight::file_bytes() const {
  size_t n = 0;
  for (const TensorView* t : {packed, absmax, quant_map, nested_absmax, nested_quant_map})
    if (t) n += t->bytes;
  return n;
}

void Nf4Weight::check() const {
  auto need = [&](const TensorView* t, const char* suffix) {
    if (!t) throw Error("NF4 weight '" + name + "': missing tensor '" + name + suffix + "'");
  };
  auto f32 = [&](const TensorView* t, int64_t numel, const std::string& what) {
    if (t->raw_u8 || t->dtype != DType::F32)
      throw Error(t->file + ": tensor '" + t->name + "' (" + what + " of NF4 weight '" + name + "') is " +
                  (t->raw_u8 ? "U8" : std::string(kernels::dtype_name(t->dtype))) + ", not F32");
    if (t->numel() != numel)
      throw Error(t->file + ": tensor '" + t->name + "' (" + what + " of NF4 weight '" + name + "') has " +
                  std::to_string(t->numel()) + " elements, the quant state needs " + std::to_string(numel));
  };
  need(packed, "");
  need(absmax, ".absmax");
  need(quant_map, ".quant_map");
  const int64_t n = state.numel();
  if (!packed->raw_u8)
    throw Error(packed->file + ": NF4 weight '" + name + "' is " + std::string(kernels::dtype_name(packed->dtype)) +
                ", not U8 (bitsandbytes' quant_storage other than uint8 is not supported)");
  if (packed->numel() != (n + 1) / 2)
    throw Error(packed->file + ": NF4 weight '" + name + "' holds " + std::to_string(packed->numel()) +
                " bytes but its quant state's shape " + shape_str(state.shape) + " needs " +
                std::to_string((n + 1) / 2));
  f32(quant_map, 16, "quant_map");
  for (int k = 0; k < 16; ++k)
    if (!(std::fabs(f32_at(*quant_map, size_t(k)) - kNf4[k]) <= 1e-6f))
      throw Error(quant_map->file + ": tensor '" + quant_map->name + "' is not the NF4 table (entry " +
                  std::to_string(k) + ")");
  const int64_t blocks = state.blocks();
  if (state.nested) {
    need(nested_absmax, ".nested_absmax");
    need(nested_quant_map, ".nested_quant_map");
    if (!absmax->raw_u8 || absmax->numel() != blocks)
      throw Error(absmax->file + ": tensor '" + absmax->name + "' (nested absmax codes of NF4 weight '" + name +
                  "') must be U8 with " + std::to_string(blocks) + " elements, is " +
                  (absmax->raw_u8 ? "U8" : std::string(kernels::dtype_name(absmax->dtype))) + " with " +
                  std::to_string(absmax->numel()));
    f32(nested_absmax, (blocks + state.nested_blocksize - 1) / state.nested_blocksize, "nested_absmax");
    f32(nested_quant_map, 256, "nested_quant_map");
  } else {
    if (nested_absmax || nested_quant_map)
      throw Error("NF4 weight '" + name + "': nested_absmax without nested fields in its quant state");
    f32(absmax, blocks, "absmax");
  }
}

void Nf4Weight::dequantize(void* out) const {
  const int64_t n = state.numel(), bs = state.blocksize;
  // The file's table (check(): the NF4 values to within 1e-6), as bitsandbytes uses it.
  float code[16];
  for (int k = 0; k < 16; ++k) code[k] = f32_at(*quant_map, size_t(k));
  const uint8_t* q = packed->data;
  for (int64_t b = 0; b < state.blocks(); ++b) {
    float scale;
    if (state.nested) {
      const float nested = f32_at(*nested_quant_map, absmax->data[b]) * f32_at(*nested_absmax, size_t(b / state.nested_blocksize));
      scale = nested + state.nested_offset;
    } else {
      scale = f32_at(*absmax, size_t(b));
    }
    const int64_t end = std::min(n, (b + 1) * bs);
    for (int64_t i = b * bs; i < end; ++i) {
      const uint8_t byte = q[i / 2];
      const int nibble = (i % 2 == 0) ? byte >> 4 : byte & 0x0f;
      write_elem(out, state.dtype, size_t(i), code[nibble] * scale);
    }
  }
}

}  // namespace omni
