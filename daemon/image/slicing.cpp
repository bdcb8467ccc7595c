// MiniCPM-V 2.6 slicing (image_processing_minicpmv.py: ensure_divide, find_best_resize,
// get_refine_size, get_sliced_grid, slice_image, split_to_patches). The arithmetic mirrors
// Python: float64 true division, round() half to even, int() truncation toward zero.
#include <cmath>
#include <limits>

#include "image/resize.h"
#include "image/slicing.h"
#include "util/error.h"

namespace omni::image {
namespace {

// Python's round(x) for a float: nearest integer, ties to even (35/14 = 2.5 -> 2), unlike
// std::round which rounds ties away from zero.
double py_round(double x) {
  double r = std::round(x);
  if (std::fabs(x - std::trunc(x)) == 0.5) r = 2.0 * std::round(x / 2.0);
  return r;
}

}  // namespace

int ensure_divide(double length, int patch_size) {
  int v = static_cast<int>(py_round(length / patch_size)) * patch_size;
  return v > patch_size ? v : patch_size;
}

std::pair<int, int> find_best_resize(double width, double height, int scale_resolution,
                                     int patch_size, bool allow_upscale) {
  const double s = scale_resolution;
  if (width * height > s * s || allow_upscale) {
    double r = width / height;
    height = std::trunc(scale_resolution / std::sqrt(r));  // int(...)
    width = std::trunc(height * r);
  }
  return {ensure_divide(width, patch_size), ensure_divide(height, patch_size)};
}

std::pair<int, int> get_refine_size(int width, int height, std::pair<int, int> grid,
                                    int scale_resolution, int patch_size, bool allow_upscale) {
  const int refine_w = ensure_divide(width, grid.first);
  const int refine_h = ensure_divide(height, grid.second);
  const double cell_w = static_cast<double>(refine_w) / grid.first;
  const double cell_h = static_cast<double>(refine_h) / grid.second;
  auto [bw, bh] = find_best_resize(cell_w, cell_h, scale_resolution, patch_size, allow_upscale);
  return {bw * grid.first, bh * grid.second};
}

std::optional<std::pair<int, int>> get_sliced_grid(int width, int height, int max_slice_nums,
                                                   int scale_resolution, bool never_split) {
  const double log_ratio = std::log(static_cast<double>(width) / height);
  const double ratio = static_cast<double>(static_cast<int64_t>(width) * height) /
                       static_cast<double>(static_cast<int64_t>(scale_resolution) * scale_resolution);
  const int multiple = static_cast<int>(std::min<double>(std::ceil(ratio), max_slice_nums));
  if (multiple <= 1 || never_split) return std::nullopt;

  std::pair<int, int> best{1, 1};
  double min_error = std::numeric_limits<double>::infinity();
  for (int n : {multiple - 1, multiple, multiple + 1}) {
    if (n == 1 || n > max_slice_nums) continue;
    for (int m = 1; m <= n; ++m) {
      if (n % m != 0) continue;
      const double error = std::fabs(log_ratio - std::log(static_cast<double>(m) / (n / m)));
      if (error < min_error) {  // strict: ties keep the first candidate
        best = {m, n / m};
        min_error = error;
      }
    }
  }
  return best;
}

std::vector<std::pair<int, int>> slice_sizes(int width, int height, const SliceConfig& cfg,
                                             std::optional<std::pair<int, int>>* grid_out) {
  if (width <= 0 || height <= 0)
    throw Error("slice: invalid image size " + std::to_string(width) + "x" + std::to_string(height));
  std::vector<std::pair<int, int>> sizes;
  std::optional<std::pair<int, int>> grid;
  if (!cfg.slice_mode) {
    sizes.emplace_back(width, height);
  } else {
    grid = get_sliced_grid(width, height, cfg.max_slice_nums, cfg.scale_resolution);
    if (!grid) {
      sizes.push_back(find_best_resize(width, height, cfg.scale_resolution, cfg.patch_size, true));
    } else {
      sizes.push_back(find_best_resize(width, height, cfg.scale_resolution, cfg.patch_size, false));
      auto [rw, rh] = get_refine_size(width, height, *grid, cfg.scale_resolution, cfg.patch_size, true);
      const int cw = rw / grid->first, ch = rh / grid->second;
      for (int r = 0; r < grid->second; ++r)
        for (int c = 0; c < grid->first; ++c) sizes.emplace_back(cw, ch);
    }
  }
  if (grid_out) *grid_out = grid;
  return sizes;
}

SlicedImage slice_image(const Image& img, const SliceConfig& cfg) {
  SlicedImage out;
  if (!cfg.slice_mode) {  // get_sliced_images returns [image] untouched
    out.pieces.push_back(img);
    return out;
  }
  std::vector<std::pair<int, int>> sizes = slice_sizes(img.width, img.height, cfg, &out.grid);
  out.pieces.push_back(resize_bicubic(img, sizes[0].first, sizes[0].second));
  if (!out.grid) return out;

  // Slices are crops of one refined resize of the ORIGINAL picture (not of the overview).
  auto [rw, rh] = get_refine_size(img.width, img.height, *out.grid, cfg.scale_resolution,
                                  cfg.patch_size, true);
  const Image refined = resize_bicubic(img, rw, rh);
  const int cw = rw / out.grid->first, ch = rh / out.grid->second;  // int(width / grid_x)
  for (int r = 0; r < out.grid->second; ++r)
    for (int c = 0; c < out.grid->first; ++c) out.pieces.push_back(crop(refined, c * cw, r * ch, cw, ch));
  return out;
}

}  // namespace omni::image
