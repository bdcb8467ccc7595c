#include "image/placeholder.h"

namespace omni::image {

std::string image_placeholder(int image_index, const std::optional<std::pair<int, int>>& grid,
                              int query_num, bool use_image_id, const PlaceholderTokens& t) {
  std::string unks;
  unks.reserve(t.unk.size() * query_num);
  for (int i = 0; i < query_num; ++i) unks += t.unk;

  std::string s;
  if (use_image_id) s += t.im_id_start + std::to_string(image_index) + t.im_id_end;
  s += t.im_start + unks + t.im_end;
  if (grid) {
    const std::string slice = t.slice_start + unks + t.slice_end;
    for (int r = 0; r < grid->second; ++r) {
      if (r > 0) s += "\n";
      for (int c = 0; c < grid->first; ++c) s += slice;
    }
  }
  return s;
}

std::string image_placeholder(int image_index, const SlicedImage& sliced, int query_num,
                              bool use_image_id, const PlaceholderTokens& tokens) {
  return image_placeholder(image_index, sliced.grid, query_num, use_image_id, tokens);
}

}  // namespace omni::image
