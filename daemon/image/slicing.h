#pragma once
// MiniCPM-V 2.6 "llava-uhd" slicing (image_processing_minicpmv.py): an overview resized to
// about scale_resolution^2 pixels plus, for large pictures, a grid of slices cut from a refined
// resize. All sizes are multiples of patch_size.
#include <optional>
#include <utility>
#include <vector>

#include "image/image.h"

namespace omni::image {

struct SliceConfig {
  int scale_resolution = 448;
  int patch_size = 14;
  int max_slice_nums = 9;
  bool slice_mode = true;  // false: the picture is used as is (no resize, no slices)
};

struct SlicedImage {
  std::optional<std::pair<int, int>> grid;  // (cols, rows); empty when not sliced
  std::vector<Image> pieces;                // overview first, then slices row by row
};

SlicedImage slice_image(const Image& img, const SliceConfig& cfg);

// The helpers, exposed for tests and for callers that only need the sizes (placeholders).
// Python round() (half to even) and int() (truncation) semantics throughout.
int ensure_divide(double length, int patch_size);
std::pair<int, int> find_best_resize(double width, double height, int scale_resolution,
                                     int patch_size, bool allow_upscale);
std::pair<int, int> get_refine_size(int width, int height, std::pair<int, int> grid,
                                    int scale_resolution, int patch_size, bool allow_upscale);
std::optional<std::pair<int, int>> get_sliced_grid(int width, int height, int max_slice_nums,
                                                   int scale_resolution, bool never_split = false);

// (width, height) of every piece slice_image() would produce, without touching pixels.
std::vector<std::pair<int, int>> slice_sizes(int width, int height, const SliceConfig& cfg,
                                             std::optional<std::pair<int, int>>* grid = nullptr);

}  // namespace omni::image
