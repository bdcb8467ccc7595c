#pragma once
// The decoder's hyper-parameters, read from a Hugging Face config.json. One struct
// covers the Qwen2, Qwen3 and Llama families; the differences are flags.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace omni {

struct LlmConfig {
  std::string arch;            // "qwen2", "qwen3", "llama"
  int hidden = 0;
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  int ffn = 0;
  int vocab = 0;
  float rms_eps = 1e-6f;
  double rope_theta = 10000.0;
  // transformers keeps RoPE's inv_freq buffer in the model dtype once a checkpoint is
  // loaded in its own dtype, so a bf16 checkpoint rotates by bf16-rounded frequencies.
  // We reproduce that: "bfloat16", "float16" or "float32" (from torch_dtype / dtype).
  // MiniCPM-V builds its Qwen2 inside its own class, and the reference for that
  // pipeline keeps float32 frequencies: ChatModel sets "float32" there.
  std::string rope_freq_dtype = "float32";
  bool tie_embeddings = false;
  bool qkv_bias = false;       // qwen2, or attention_bias = true
  bool qk_norm = false;        // qwen3: per-head RMSNorm on q and k
  int max_positions = 0;
  std::optional<int32_t> bos_id;
  std::vector<int32_t> eos_ids;

  // `source` names the file in messages; `arch_override` forces the family (MiniCPM-V
  // configs carry model_type "minicpmv" with Qwen2 fields at the top level).
  static LlmConfig from_json(const nlohmann::json& cfg, const std::string& source,
                             const std::string& arch_override = "");

  // RoPE frequencies inv_freq[i] = theta^(-2i/head_dim), rounded as transformers holds them.
  std::vector<float> rope_inv_freq() const;

  int64_t q_width() const { return int64_t(n_heads) * head_dim; }
  int64_t kv_width() const { return int64_t(n_kv_heads) * head_dim; }
  // Parameter bytes of one decoder layer / of the embeddings and head, at `elem` bytes each.
  int64_t layer_params() const;
  // Tensor parallelism over n ranks splits whole heads (with their KV heads) and MLP
  // columns evenly; throws naming the numbers when they do not divide.
  void check_tensor_split(int n) const;
  int64_t embed_params() const { return int64_t(vocab) * hidden; }
  int64_t head_params() const { return tie_embeddings ? 0 : int64_t(vocab) * hidden; }
};

}  // namespace omni
