#include "model/llm_config.h"

#include <cmath>

#include "kernels/dtype.h"
#include "util/error.h"

namespace omni {

namespace {

int get_int(const nlohmann::json& c, const char* key, const std::string& src, int lo = 1) {
  if (!c.contains(key) || !c[key].is_number_integer())
    throw Error(src + ": missing or non-integer field '" + key + "'");
  int64_t v = c[key].get<int64_t>();
  if (v < lo || v > (int64_t(1) << 30)) throw Error(src + ": field '" + key + "' = " + std::to_string(v) + " is out of range");
  return static_cast<int>(v);
}

std::vector<int32_t> id_list(const nlohmann::json& v) {
  std::vector<int32_t> out;
  if (v.is_number_integer()) out.push_back(v.get<int32_t>());
  else if (v.is_array())
    for (const auto& e : v)
      if (e.is_number_integer()) out.push_back(e.get<int32_t>());
  return out;
}

}  // namespace

LlmConfig LlmConfig::from_json(const nlohmann::json& c, const std::string& src, const std::string& arch_override) {
  LlmConfig k;
  k.arch = arch_override;
  if (k.arch.empty()) {
    std::string mt = c.value("model_type", "");
    if (mt == "qwen2" || mt == "qwen3" || mt == "llama") k.arch = mt;
    else if (mt == "mistral") k.arch = "llama";   // same block; no sliding window used here
    else throw Error(src + ": unsupported architecture model_type '" + mt + "' (supported: qwen2, qwen3, llama)");
  }
  if (c.value("hidden_act", "silu") != "silu")
    throw Error(src + ": unsupported hidden_act '" + c.value("hidden_act", "") + "' (only silu)");
  k.hidden = get_int(c, "hidden_size", src);
  k.n_layers = get_int(c, "num_hidden_layers", src);
  k.n_heads = get_int(c, "num_attention_heads", src);
  k.n_kv_heads = c.contains("num_key_value_heads") && !c["num_key_value_heads"].is_null()
                     ? get_int(c, "num_key_value_heads", src)
                     : k.n_heads;
  k.ffn = get_int(c, "intermediate_size", src);
  k.vocab = get_int(c, "vocab_size", src);
  if (c.contains("head_dim") && !c["head_dim"].is_null()) {
    k.head_dim = get_int(c, "head_dim", src);
  } else {
    if (k.hidden % k.n_heads) throw Error(src + ": hidden_size is not a multiple of num_attention_heads");
    k.head_dim = k.hidden / k.n_heads;
  }
  if (k.head_dim % 2) throw Error(src + ": head_dim " + std::to_string(k.head_dim) + " must be even for RoPE");
  if (k.n_heads % k.n_kv_heads)
    throw Error(src + ": num_attention_heads " + std::to_string(k.n_heads) + " is not a multiple of num_key_value_heads " +
                std::to_string(k.n_kv_heads));
  k.rms_eps = c.value("rms_norm_eps", 1e-6f);
  // transformers 4 writes rope_theta at the top level; transformers 5 under rope_parameters.
  if (c.contains("rope_parameters") && c["rope_parameters"].is_object()) {
    const auto& rp = c["rope_parameters"];
    std::string type = rp.value("rope_type", "default");
    if (type != "default") throw Error(src + ": unsupported rope_type '" + type + "'");
    k.rope_theta = rp.value("rope_theta", 10000.0);
  } else {
    k.rope_theta = c.value("rope_theta", 10000.0);
  }
  if (c.contains("rope_scaling") && !c["rope_scaling"].is_null()) {
    const auto& rs = c["rope_scaling"];
    std::string type = rs.is_object() ? rs.value("rope_type", rs.value("type", "")) : "";
    if (type != "default") throw Error(src + ": unsupported rope_scaling '" + rs.dump() + "'");
  }
  if (k.rope_theta <= 0) throw Error(src + ": rope_theta must be positive");
  std::string dtype = c.value("torch_dtype", c.value("dtype", std::string("float32")));
  if (dtype != "bfloat16" && dtype != "float16" && dtype != "float32")
    throw Error(src + ": unsupported checkpoint dtype '" + dtype + "' (bfloat16, float16, float32)");
  k.rope_freq_dtype = dtype;
  k.tie_embeddings = c.value("tie_word_embeddings", k.arch == "qwen3" ? true : false);
  k.qkv_bias = k.arch == "qwen2" || (c.contains("attention_bias") && c["attention_bias"].is_boolean() &&
                                     c["attention_bias"].get<bool>());
  k.qk_norm = k.arch == "qwen3";
  k.max_positions = c.contains("max_position_embeddings") ? get_int(c, "max_position_embeddings", src) : 4096;
  if (c.contains("bos_token_id") && c["bos_token_id"].is_number_integer()) k.bos_id = c["bos_token_id"].get<int32_t>();
  if (c.contains("eos_token_id")) k.eos_ids = id_list(c["eos_token_id"]);
  return k;
}

std::vector<float> LlmConfig::rope_inv_freq() const {
  std::vector<float> f(size_t(head_dim / 2));
  for (size_t i = 0; i < f.size(); ++i) {
    // float32 arithmetic, as torch computes the buffer.
    float e = float(2 * i) / float(head_dim);
    float v = 1.0f / std::pow(float(rope_theta), e);
    if (rope_freq_dtype == "bfloat16") v = kernels::bf16_to_f32(kernels::f32_to_bf16(v));
    else if (rope_freq_dtype == "float16") v = kernels::f16_to_f32(kernels::f32_to_f16(v));
    f[i] = v;
  }
  return f;
}

int64_t LlmConfig::layer_params() const {
  int64_t attn = int64_t(hidden) * (q_width() + 2 * kv_width()) + q_width() * hidden;
  if (qkv_bias) attn += q_width() + 2 * kv_width();
  if (qk_norm) attn += 2 * head_dim;
  return attn + 3 * int64_t(hidden) * ffn + 2 * int64_t(hidden);
}

void LlmConfig::check_tensor_split(int n) const {
  if (n_heads % n || n_kv_heads % n)
    throw Error("tensor parallel over " + std::to_string(n) + " devices: the " + std::to_string(n_heads) +
                " attention heads and " + std::to_string(n_kv_heads) + " KV heads must both divide by " +
                std::to_string(n) + " (use pipeline, or a device count that divides them)");
  if (ffn % n)
    throw Error("tensor parallel over " + std::to_string(n) + " devices: intermediate_size " + std::to_string(ffn) +
                " does not divide by " + std::to_string(n));
}

}  // namespace omni
