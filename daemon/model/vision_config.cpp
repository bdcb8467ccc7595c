#include "model/vision_config.h"

#include "util/error.h"

namespace omni {

namespace {

int get_int(const nlohmann::json& c, const char* key, const std::string& src) {
  if (!c.contains(key) || !c[key].is_number_integer())
    throw Error(src + ": missing or non-integer field '" + key + "'");
  const int64_t v = c[key].get<int64_t>();
  if (v < 1 || v > (int64_t(1) << 30)) throw Error(src + ": field '" + key + "' = " + std::to_string(v) + " is out of range");
  return static_cast<int>(v);
}

}  // namespace

VisionConfig VisionConfig::from_json(const nlohmann::json& c, const std::string& src) {
  if (!c.is_object()) throw Error(src + ": vision config is not a JSON object");
  VisionConfig v;
  v.hidden = get_int(c, "hidden_size", src);
  v.ffn = get_int(c, "intermediate_size", src);
  v.n_heads = get_int(c, "num_attention_heads", src);
  v.n_layers = get_int(c, "num_hidden_layers", src);
  v.patch_size = get_int(c, "patch_size", src);
  v.image_size = get_int(c, "image_size", src);
  if (v.hidden % v.n_heads)
    throw Error(src + ": hidden_size " + std::to_string(v.hidden) + " is not a multiple of num_attention_heads " +
                std::to_string(v.n_heads));
  if (v.image_size < v.patch_size)
    throw Error(src + ": image_size " + std::to_string(v.image_size) + " is smaller than patch_size " +
                std::to_string(v.patch_size));
  if (c.contains("layer_norm_eps") && !c["layer_norm_eps"].is_null()) {
    if (!c["layer_norm_eps"].is_number()) throw Error(src + ": field 'layer_norm_eps' is not a number");
    const double eps = c["layer_norm_eps"].get<double>();
    if (!(eps > 0 && eps < 1)) throw Error(src + ": field 'layer_norm_eps' = " + std::to_string(eps) + " is out of range");
    v.layer_norm_eps = static_cast<float>(eps);
  }
  if (c.contains("hidden_act") && !c["hidden_act"].is_null()) {
    if (!c["hidden_act"].is_string()) throw Error(src + ": field 'hidden_act' is not a string");
    const std::string act = c["hidden_act"].get<std::string>();
    if (act != "gelu_pytorch_tanh")
      throw Error(src + ": unsupported vision hidden_act '" + act + "' (only gelu_pytorch_tanh)");
  }
  if (c.contains("num_channels") && c["num_channels"].is_number_integer() && c["num_channels"].get<int64_t>() != 3)
    throw Error(src + ": num_channels must be 3, got " + std::to_string(c["num_channels"].get<int64_t>()));
  return v;
}

}  // namespace omni
