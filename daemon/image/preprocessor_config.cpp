// Reads the image settings of a checkpoint's preprocessor_config.json.
#include <fstream>

#include <nlohmann/json.hpp>

#include "image/placeholder.h"
#include "util/error.h"

namespace omni::image {

PreprocessorConfig load_preprocessor_config(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw Error(path + ": cannot open preprocessor config");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const std::exception& e) {
    throw Error(path + ": invalid JSON: " + e.what());
  }
  PreprocessorConfig c;
  try {
    c.slice.scale_resolution = j.value("scale_resolution", c.slice.scale_resolution);
    c.slice.patch_size = j.value("patch_size", c.slice.patch_size);
    c.slice.max_slice_nums = j.value("max_slice_nums", c.slice.max_slice_nums);
    c.slice.slice_mode = j.value("slice_mode", c.slice.slice_mode);
    c.image_feature_size = j.value("image_feature_size", c.image_feature_size);
    c.use_image_id = j.value("use_image_id", c.use_image_id);
    PlaceholderTokens& t = c.tokens;
    t.im_start = j.value("im_start", t.im_start);
    t.im_end = j.value("im_end", t.im_end);
    t.slice_start = j.value("slice_start", t.slice_start);
    t.slice_end = j.value("slice_end", t.slice_end);
    t.unk = j.value("unk", t.unk);
    t.im_id_start = j.value("im_id_start", t.im_id_start);
    t.im_id_end = j.value("im_id_end", t.im_id_end);
    for (const char* key : {"norm_mean", "norm_std"}) {
      if (!j.contains(key)) continue;
      const auto& a = j.at(key);
      if (!a.is_array() || a.size() != 3) throw Error(path + ": " + key + " must have 3 numbers");
      auto& dst = std::string(key) == "norm_mean" ? c.norm_mean : c.norm_std;
      for (int i = 0; i < 3; ++i) dst[i] = a[i].get<float>();
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": bad preprocessor config: " + e.what());
  }
  if (c.slice.scale_resolution <= 0 || c.slice.patch_size <= 0 || c.slice.max_slice_nums <= 0)
    throw Error(path + ": scale_resolution, patch_size and max_slice_nums must be positive");
  return c;
}

}  // namespace omni::image
