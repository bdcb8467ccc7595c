// The released encode_video rules in double arithmetic, operation for operation as Python and
// numpy evaluate them (tools/video_sampling_reference.py is the executable reference and
// tests/data/video/sampling.json its output). Built with -ffp-contract=off (daemon/CMakeLists.txt)
// so that i*gap + gap/2 is two roundings, as in Python, never one fused multiply-add.
#include "video/sampling.h"

#include <algorithm>
#include <cmath>
#include <cstddef>

namespace omni::video {
namespace {

// Python's round() of a float: to nearest, ties to even (nearbyint in the default rounding mode).
double py_round(double x) { return std::nearbyint(x); }

// uniform_sample(l, n): l[int(i * gap + gap / 2)] with gap = len(l) / n. With n > len(l) the
// same element is picked more than once; the released code keeps those repeats and so do we.
std::vector<int64_t> uniform_sample(const std::vector<int64_t>& l, int64_t n) {
  std::vector<int64_t> out;
  if (n <= 0 || l.empty()) return out;  // Python: ZeroDivisionError / IndexError
  out.reserve(static_cast<size_t>(n));
  const double gap = static_cast<double>(l.size()) / static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i) {
    const double at = static_cast<double>(i) * gap + gap / 2;
    auto k = static_cast<size_t>(at);  // int(): truncation, at >= 0
    out.push_back(l[std::min(k, l.size() - 1)]);  // k < len(l) in exact arithmetic
  }
  return out;
}

// scipy's cKDTree over the 0.1 s steps, 1-D, as the released map_to_nearest_scale builds it
// (leafsize 16, median splits by std::nth_element, which scipy compiles from the same libstdc++
// header), queried for k = 1. Only the tie rule needs the tree: the nearest step by squared
// distance, and among exactly tied steps the one the search meets first, i.e. the first in the
// order nth_element left the query's leaf in (a later point must be strictly closer).
class StepTree {
 public:
  explicit StepTree(std::vector<double> steps) : data_(std::move(steps)), idx_(data_.size()) {
    for (size_t i = 0; i < idx_.size(); ++i) idx_[i] = static_cast<int64_t>(i);
    if (!data_.empty()) build(0, idx_.size());
  }

  size_t nearest(double x) const {
    const Node* node = &nodes_[0];
    while (node->leaf_end == 0) node = &nodes_[x < node->split ? node->less : node->greater];
    size_t best = 0;
    double best_d = INFINITY;
    auto consider = [&](size_t i) {
      const double diff = data_[i] - x;
      const double d = diff * diff;
      if (d < best_d) {
        best = i;
        best_d = d;
      }
    };
    for (size_t k = node->leaf_start; k < node->leaf_end; ++k) consider(static_cast<size_t>(idx_[k]));
    // Outside the leaf only the two steps around x can be closer (the steps are sorted).
    const auto above = static_cast<size_t>(std::upper_bound(data_.begin(), data_.end(), x) - data_.begin());
    if (above > 0) consider(above - 1);
    if (above < data_.size()) consider(above);
    return best;
  }

 private:
  struct Node {
    double split = 0;
    size_t less = 0, greater = 0;
    size_t leaf_start = 0, leaf_end = 0;  // leaf_end > 0: a leaf over idx_[leaf_start, leaf_end)
  };
  static constexpr size_t kLeafSize = 16;

  size_t build(size_t start, size_t end) {
    const size_t me = nodes_.size();
    nodes_.emplace_back();
    if (end - start <= kLeafSize) {
      nodes_[me].leaf_start = start;
      nodes_[me].leaf_end = end;
      return me;
    }
    const size_t mid = start + (end - start) / 2;
    std::nth_element(idx_.begin() + static_cast<std::ptrdiff_t>(start), idx_.begin() + static_cast<std::ptrdiff_t>(mid),
                     idx_.begin() + static_cast<std::ptrdiff_t>(end),
                     [this](int64_t a, int64_t b) { return data_[static_cast<size_t>(a)] < data_[static_cast<size_t>(b)]; });
    // scipy then partitions [start, mid) on "< split": a no-op, the steps being distinct.
    const double split = data_[static_cast<size_t>(idx_[mid])];
    const size_t less = build(start, mid);
    const size_t greater = build(mid, end);
    nodes_[me].split = split;
    nodes_[me].less = less;
    nodes_[me].greater = greater;
    return me;
  }

  std::vector<double> data_;
  std::vector<int64_t> idx_;
  std::vector<Node> nodes_;
};

}  // namespace

FrameSample sample_frames_v26(int64_t frame_count, double fps, double choose_fps, int max_frames) {
  FrameSample s;
  if (frame_count <= 0 || !(fps > 0) || !std::isfinite(fps) || !(choose_fps > 0) || max_frames <= 0) return s;
  const double step = py_round(fps / choose_fps);
  if (step < 1) return s;  // Python: range() with step 0 raises ValueError
  const auto sample_fps = static_cast<int64_t>(step);
  std::vector<int64_t> idx;
  idx.reserve(static_cast<size_t>((frame_count + sample_fps - 1) / sample_fps));
  for (int64_t i = 0; i < frame_count; i += sample_fps) idx.push_back(i);
  if (static_cast<int64_t>(idx.size()) > max_frames) idx = uniform_sample(idx, max_frames);
  s.indices = std::move(idx);
  return s;
}

FrameSample sample_frames_v45(int64_t frame_count, double fps, double choose_fps, int max_frames, int max_packing,
                              int force_packing) {
  FrameSample s;
  if (frame_count <= 0 || !(fps > 0) || !std::isfinite(fps) || !(choose_fps > 0) || max_frames <= 0 ||
      max_packing <= 0)
    return s;
  const double duration = static_cast<double>(frame_count) / fps;
  const double max_f = max_frames;
  int64_t choose_frames = 0;
  int packing = 1;
  if (choose_fps * std::trunc(duration) <= max_f) {
    choose_frames = static_cast<int64_t>(py_round(std::min(choose_fps, py_round(fps)) * std::min(max_f, duration)));
  } else {
    const double p = std::ceil(duration * choose_fps / max_f);
    if (p <= max_packing) {
      packing = static_cast<int>(p);
      choose_frames = static_cast<int64_t>(py_round(duration * choose_fps));
    } else {
      packing = max_packing;
      choose_frames = int64_t{max_frames} * max_packing;
    }
  }
  // choose_frames 0 (under 0.5 s of video, or fps rounding to 0): the released code divides by
  // zero in uniform_sample; here the sample is empty and the caller refuses the video.
  if (choose_frames <= 0) return s;
  std::vector<int64_t> all(static_cast<size_t>(frame_count));
  for (int64_t i = 0; i < frame_count; ++i) all[static_cast<size_t>(i)] = i;
  s.indices = uniform_sample(all, choose_frames);
  if (force_packing > 0) packing = std::min(force_packing, max_packing);
  s.packing = packing;

  // numpy's arange(0, duration, 0.1): ceil(duration / 0.1) values, the i-th computed as
  // 0 + i * 0.1 (its fill loop), not by repeated addition.
  constexpr double kTimeScale = 0.1;
  constexpr double kMaxSteps = 10'000'000;  // 80 MB of steps and a tree over them
  const double steps_needed = std::ceil(duration / kTimeScale);
  if (steps_needed > kMaxSteps) return FrameSample{};
  const auto n_steps = static_cast<size_t>(steps_needed);
  std::vector<double> steps(n_steps);
  for (size_t i = 0; i < n_steps; ++i) steps[i] = 0.0 + static_cast<double>(i) * kTimeScale;
  const StepTree tree(steps);
  s.temporal_ids.reserve(s.indices.size());
  for (int64_t idx : s.indices) {
    const double t = static_cast<double>(idx) / fps;
    // (nearest / 0.1).astype(int32): truncation, so 2.9999999999999996 gives 2, as numpy does.
    s.temporal_ids.push_back(static_cast<int32_t>(steps[tree.nearest(t)] / kTimeScale));
  }
  return s;
}

}  // namespace omni::video
