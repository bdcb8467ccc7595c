// A transcription of the arithmetic of Pillow's src/libImaging/Resample.c (ImagingResample with
// the BICUBIC filter, 8 bits per channel). Every step that affects rounding is kept as Pillow
// has it: double-precision coefficients normalised per output pixel, conversion to fixed point
// with PRECISION_BITS = 22 (round half away from zero), a 1 << 21 rounding bias in the integer
// accumulator, clipping by arithmetic shift, horizontal pass first over only the rows the
// vertical pass reads, then the vertical pass.
#include <cmath>
#include <algorithm>
#include <cstdint>
#include <vector>

#include "image/resize.h"
#include "util/error.h"

namespace omni::image {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;

double bicubic_filter(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}
constexpr double kSupport = 2.0;

struct Coeffs {
  int ksize = 0;
  std::vector<int> bounds;   // per output pixel: first input index, count
  std::vector<int32_t> kk;   // out_size * ksize fixed-point weights
};

// Pillow precompute_coeffs() + normalize_coeffs_8bpc(). in0/in1 are floats as in Pillow's box.
Coeffs precompute_coeffs(int in_size, float in0, float in1, int out_size) {
  double scale = static_cast<double>(in1 - in0) / out_size;
  double filterscale = scale < 1.0 ? 1.0 : scale;  // antialias only when shrinking
  double support = kSupport * filterscale;
  Coeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.bounds.resize(static_cast<size_t>(out_size) * 2);
  c.kk.assign(static_cast<size_t>(out_size) * c.ksize, 0);
  std::vector<double> k(c.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    double center = in0 + (xx + 0.5) * scale;
    double ww = 0.0;
    double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    for (int x = 0; x < xmax; ++x) {
      double w = bicubic_filter((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; ++x)
      if (ww != 0.0) k[x] /= ww;
    int32_t* out = &c.kk[static_cast<size_t>(xx) * c.ksize];
    for (int x = 0; x < xmax; ++x)
      out[x] = k[x] < 0 ? static_cast<int32_t>(-0.5 + k[x] * (1 << kPrecisionBits))
                        : static_cast<int32_t>(0.5 + k[x] * (1 << kPrecisionBits));
    c.bounds[xx * 2] = xmin;
    c.bounds[xx * 2 + 1] = xmax;
  }
  return c;
}

inline uint8_t clip8(int32_t in) {
  int32_t v = in >> kPrecisionBits;  // arithmetic shift, as Pillow's lookup index
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// Rows [offset, offset + out.height) of `in` resampled horizontally into `out`.
void resample_horizontal(Image& out, const Image& in, int offset, const Coeffs& c) {
  for (int yy = 0; yy < out.height; ++yy) {
    const uint8_t* row = in.pixel(0, yy + offset);
    uint8_t* dst = &out.rgb[static_cast<size_t>(yy) * out.width * 3];
    for (int xx = 0; xx < out.width; ++xx) {
      int xmin = c.bounds[xx * 2], xmax = c.bounds[xx * 2 + 1];
      const int32_t* k = &c.kk[static_cast<size_t>(xx) * c.ksize];
      int32_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
      for (int x = 0; x < xmax; ++x) {
        const uint8_t* p = row + (x + xmin) * 3;
        s0 += p[0] * k[x];
        s1 += p[1] * k[x];
        s2 += p[2] * k[x];
      }
      dst[xx * 3] = clip8(s0);
      dst[xx * 3 + 1] = clip8(s1);
      dst[xx * 3 + 2] = clip8(s2);
    }
  }
}

// `ymin_shift` is subtracted from the bounds (Pillow shifts them when the horizontal pass
// produced only the needed rows). Rows are accumulated whole for cache locality; integer sums
// do not depend on the order of addition, so the result is Pillow's.
void resample_vertical(Image& out, const Image& in, int ymin_shift, const Coeffs& c) {
  const size_t stride = static_cast<size_t>(in.width) * 3;
  std::vector<int32_t> acc(stride);
  for (int yy = 0; yy < out.height; ++yy) {
    const int ymin = c.bounds[yy * 2] - ymin_shift, ymax = c.bounds[yy * 2 + 1];
    const int32_t* k = &c.kk[static_cast<size_t>(yy) * c.ksize];
    std::fill(acc.begin(), acc.end(), int32_t{1} << (kPrecisionBits - 1));
    for (int y = 0; y < ymax; ++y) {
      const uint8_t* row = &in.rgb[(y + ymin) * stride];
      const int32_t w = k[y];
      for (size_t i = 0; i < stride; ++i) acc[i] += row[i] * w;
    }
    uint8_t* dst = &out.rgb[static_cast<size_t>(yy) * stride];
    for (size_t i = 0; i < stride; ++i) dst[i] = clip8(acc[i]);
  }
}

}  // namespace

Image resize_bicubic(const Image& img, int width, int height) {
  if (width <= 0 || height <= 0 || img.width <= 0 || img.height <= 0)
    throw Error("resize: cannot resize a " + std::to_string(img.width) + "x" +
                std::to_string(img.height) + " image to " + std::to_string(width) + "x" +
                std::to_string(height));
  // Image.resize returns a copy when the size does not change.
  const bool need_horizontal = width != img.width;
  const bool need_vertical = height != img.height;
  if (!need_horizontal && !need_vertical) return img;

  Coeffs vert = precompute_coeffs(img.height, 0.0f, static_cast<float>(img.height), height);
  const int ybox_first = vert.bounds[0];
  const int ybox_last = vert.bounds[height * 2 - 2] + vert.bounds[height * 2 - 1];

  Image temp;
  const Image* src = &img;
  int shift = 0;
  if (need_horizontal) {
    Coeffs horiz = precompute_coeffs(img.width, 0.0f, static_cast<float>(img.width), width);
    temp.width = width;
    // Only the rows the vertical pass reads (without a vertical pass: all rows).
    temp.height = ybox_last - ybox_first;
    temp.rgb.resize(static_cast<size_t>(temp.width) * temp.height * 3);
    resample_horizontal(temp, img, ybox_first, horiz);
    src = &temp;
    shift = ybox_first;
  }
  if (!need_vertical) return temp;
  Image out;
  out.width = src->width;
  out.height = height;
  out.rgb.resize(static_cast<size_t>(out.width) * height * 3);
  resample_vertical(out, *src, shift, vert);
  return out;
}

}  // namespace omni::image
