#include "image/placeholder.h"

namespace omni::image {

std::string image_placeholder(int image_index, const std::optional<std::pair<int, int>>& grid,
                              int query_num, bool use_image_id, const PlaceholderTokens& t,
                              PlaceholderSchema schema) {
  std::string unks;
  unks.reserve(t.unk.size() * query_num);
  for (int i = 0; i < query_num; ++i) unks += t.unk;

  std::string s;
  if (use_image_id) s += t.im_id_start + std::to_string(image_index) + t.im_id_end;
  const std::string overview = t.im_start + unks + t.im_end;
  s += overview;
  if (!grid) return s;
  const bool one_block = schema == PlaceholderSchema::slices_in_one_block;
  const std::string slice = one_block ? overview : t.slice_start + unks + t.slice_end;
  if (one_block) s += t.slice_start;
  for (int r = 0; r < grid->second; ++r) {
    if (r > 0) s += "\n";
    for (int c = 0; c < grid->first; ++c) s += slice;
  }
  if (one_block) s += t.slice_end;
  return s;
}

std::string image_placeholder(int image_index, const SlicedImage& sliced, int query_num,
                              bool use_image_id, const PlaceholderTokens& tokens, PlaceholderSchema schema) {
  return image_placeholder(image_index, sliced.grid, query_num, use_image_id, tokens, schema);
}

}  // namespace omni::image
