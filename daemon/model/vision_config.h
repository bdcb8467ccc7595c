#pragma once
// Hyper-parameters of the SigLIP "NaViT" vision tower of MiniCPM-V (the `vision_config`
// object of its config.json, or a plain Idefics2/SigLIP vision config at top level).
#include <nlohmann/json.hpp>
#include <string>

namespace omni {

struct VisionConfig {
  int hidden = 0;          // hidden_size
  int ffn = 0;             // intermediate_size
  int n_heads = 0;         // num_attention_heads
  int n_layers = 0;        // num_hidden_layers
  int patch_size = 0;      // patch_size (14)
  int image_size = 0;      // image_size (980 for 2.6); image_size / patch_size patches per side
  float layer_norm_eps = 1e-6f;

  int head_dim() const { return hidden / n_heads; }
  int patches_per_side() const { return image_size / patch_size; }
  int64_t num_positions() const { return int64_t(patches_per_side()) * patches_per_side(); }

  // `c` is the vision config object itself; `src` names it in errors ("dir/config.json: vision_config").
  // hidden_act must be gelu_pytorch_tanh (the default when absent).
  static VisionConfig from_json(const nlohmann::json& c, const std::string& src);
};

}  // namespace omni
