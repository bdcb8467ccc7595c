#pragma once
// The text that replaces an image marker in the prompt (spec 2.7), and the settings of
// preprocessor_config.json it depends on.
#include <array>
#include <string>

#include "image/slicing.h"

namespace omni::image {

struct PlaceholderTokens {
  std::string im_start = "<image>", im_end = "</image>";
  std::string slice_start = "<slice>", slice_end = "</slice>";
  std::string unk = "<unk>";
  std::string im_id_start = "<image_id>", im_id_end = "</image_id>";
};

// How a sliced picture's slices are written after its overview.
enum class PlaceholderSchema {
  // 2.6 and later: one line per grid row of (slice_start unk*query_num slice_end) per
  // column, rows joined by "\n".
  slice_per_piece,
  // MiniCPM-Llama3-V 2.5 (its get_grid_placeholder): one slice_start ... slice_end block
  // around all rows, each slice written as the overview is (im_start unk*query_num im_end),
  // rows joined by "\n".
  slices_in_one_block,
};

// [im_id_start i im_id_end] im_start unk*query_num im_end, then the slices when sliced.
std::string image_placeholder(int image_index, const SlicedImage& sliced, int query_num,
                              bool use_image_id, const PlaceholderTokens& tokens,
                              PlaceholderSchema schema = PlaceholderSchema::slice_per_piece);
// Same, from the grid alone (it is all the string depends on).
std::string image_placeholder(int image_index, const std::optional<std::pair<int, int>>& grid,
                              int query_num, bool use_image_id, const PlaceholderTokens& tokens,
                              PlaceholderSchema schema = PlaceholderSchema::slice_per_piece);

// Everything the image path reads from preprocessor_config.json (missing keys keep the
// MiniCPM-V 2.6 defaults of MiniCPMVImageProcessor.__init__).
struct PreprocessorConfig {
  SliceConfig slice;
  int image_feature_size = 64;  // query_num
  bool use_image_id = false;  // 2.6 checkpoints set it true in the json
  PlaceholderTokens tokens;
  std::array<float, 3> norm_mean{0.5f, 0.5f, 0.5f};
  std::array<float, 3> norm_std{0.5f, 0.5f, 0.5f};
};

PreprocessorConfig load_preprocessor_config(const std::string& path);

}  // namespace omni::image
