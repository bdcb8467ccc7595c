#include "model/weight_loader.h"

#include <spdlog/spdlog.h>

#include "util/error.h"

namespace omni {

using kernels::DType;
using kernels::Tensor;

WeightLoader::WeightLoader(const Checkpoint& ckpt, ProgressFn progress) : ckpt_(ckpt), progress_(std::move(progress)) {}

void WeightLoader::plan(const std::string& name) {
  // A missing tensor is left to load(), which reports it with context.
  if (!ckpt_.contains(name) || !planned_.insert(name).second) return;
  state_.total_bytes += ckpt_.bytes(name).view;   // bytes(): an NF4 weight is not dequantized here
  state_.total_tensors += 1;
}

void WeightLoader::report(const std::string& name, size_t bytes) {
  const size_t size = ckpt_.bytes(name).view;
  auto [it, first] = done_.try_emplace(name, 0);
  if (first) state_.done_tensors += 1;
  const size_t add = std::min(bytes, size - it->second);
  it->second += add;
  state_.done_bytes += add;
  // All of it is on its devices: an NF4 weight's dequantized copy goes (a copy adopted by a
  // device stays with that tensor; a tensor loaded again is dequantized again).
  if (it->second == size) ckpt_.release(name);
  if (progress_) progress_(state_);
}

namespace {

// Elements converted at a time: a slice's float32 staging stays a few MiB.
constexpr int64_t kSliceElems = int64_t(1) << 21;

// `rows` x `cols` elements of `src` starting at `first`, rows `stride` elements apart,
// as a tensor of `shape` in `want` on `dev`.
Tensor fetch(const TensorView& src, const uint8_t* first, int64_t rows, int64_t cols, int64_t stride,
             std::vector<int64_t> shape, DType want, const std::shared_ptr<kernels::Device>& dev) {
  const size_t esz = kernels::dtype_size(src.dtype);
  if (want == src.dtype && stride == cols) {
    Tensor t = Tensor::adopt_host(dev, want, shape, first, src.owner);
    if (t.defined()) return t;
  }
  Tensor out = Tensor::empty(dev, want, std::move(shape));
  if (out.rows() * out.cols() != rows * cols) throw Error("weight loader: shape mismatch for '" + src.name + "'");
  // Whole rows of `out` per slice (a Q8_0 row is quantized as one), and rows of the source
  // map onto rows of `out` only as elements: count in elements, cut at out's rows.
  const int64_t oc = std::max<int64_t>(out.cols(), 1), orows = out.rows();
  const int64_t per_slice = std::max<int64_t>(1, kSliceElems / oc);
  std::vector<float> host;
  std::vector<uint8_t> staged;
  for (int64_t r0 = 0; r0 < orows; r0 += per_slice) {
    const int64_t nr = std::min(per_slice, orows - r0), e0 = r0 * oc, ne = nr * oc;
    host.resize(size_t(ne));
    for (int64_t e = e0; e < e0 + ne;) {   // source rows, possibly strided (a column block)
      const int64_t r = e / cols, c = e % cols;
      const int64_t n = stride == cols ? e0 + ne - e : std::min(cols - c, e0 + ne - e);
      kernels::convert_to_f32(first + size_t(r * stride + c) * esz, src.dtype, host.data() + (e - e0), size_t(n));
      e += n;
    }
    const size_t rb = kernels::row_bytes(want, oc);
    staged.resize(size_t(nr) * rb);
    kernels::convert_rows_from_f32(host.data(), want, nr, oc, staged.data());
    dev->upload(static_cast<uint8_t*>(out.raw()) + size_t(r0) * rb, staged.data(), staged.size());
  }
  if (rows > 0 && src.file_backed) drop_mapped_pages(first, size_t((rows - 1) * stride + cols) * esz);
  return out;
}

}  // namespace

Tensor WeightLoader::load(const std::string& name, const std::vector<int64_t>& shape,
                          const std::shared_ptr<kernels::Device>& dev) {
  return rows(name, shape, 0, shape.empty() ? 1 : shape[0], dev, false);
}
Tensor WeightLoader::load_rows(const std::string& name, const std::vector<int64_t>& shape, int64_t first,
                               int64_t count, const std::shared_ptr<kernels::Device>& dev) {
  return rows(name, shape, first, count, dev, false);
}
Tensor WeightLoader::load_cols(const std::string& name, const std::vector<int64_t>& shape, int64_t first,
                               int64_t count, const std::shared_ptr<kernels::Device>& dev) {
  return cols(name, shape, first, count, dev, false);
}
Tensor WeightLoader::load_matrix(const std::string& name, const std::vector<int64_t>& shape,
                                 const std::shared_ptr<kernels::Device>& dev) {
  return rows(name, shape, 0, shape.empty() ? 1 : shape[0], dev, true);
}
Tensor WeightLoader::load_matrix_rows(const std::string& name, const std::vector<int64_t>& shape, int64_t first,
                                      int64_t count, const std::shared_ptr<kernels::Device>& dev) {
  return rows(name, shape, first, count, dev, true);
}
Tensor WeightLoader::load_matrix_cols(const std::string& name, const std::vector<int64_t>& shape, int64_t first,
                                      int64_t count, const std::shared_ptr<kernels::Device>& dev) {
  return cols(name, shape, first, count, dev, true);
}

Tensor WeightLoader::rows(const std::string& name, const std::vector<int64_t>& shape, int64_t first, int64_t count,
                          const std::shared_ptr<kernels::Device>& dev, bool matrix) {
  const TensorView t = ckpt_.get(name, shape);   // a copy: its owner keeps an NF4 weight's data past a release
  const int64_t n0 = shape.empty() ? 1 : shape[0];
  const int64_t cols = n0 > 0 ? t.numel() / n0 : 0;
  if (first < 0 || count < 0 || first + count > n0)
    throw Error(t.file + ": rows [" + std::to_string(first) + ", " + std::to_string(first + count) +
                ") outside tensor '" + name + "' " + t.shape_str());
  std::vector<int64_t> s = shape.empty() ? std::vector<int64_t>{1} : shape;
  s[0] = count;
  if (shape.empty()) s.clear();
  const DType want = matrix ? dev->weight_dtype(t.dtype) : dev->compute_dtype();
  Tensor out = fetch(t, t.data + size_t(first * cols) * kernels::dtype_size(t.dtype), count, cols, cols, s, want, dev);
  report(name, size_t(count * cols) * kernels::dtype_size(t.dtype));
  return out;
}

Tensor WeightLoader::cols(const std::string& name, const std::vector<int64_t>& shape, int64_t first, int64_t count,
                          const std::shared_ptr<kernels::Device>& dev, bool matrix) {
  const TensorView t = ckpt_.get(name, shape);   // a copy: its owner keeps an NF4 weight's data past a release
  if (shape.size() != 2 || first < 0 || count < 0 || first + count > shape[1])
    throw Error(t.file + ": columns [" + std::to_string(first) + ", " + std::to_string(first + count) +
                ") outside tensor '" + name + "' " + t.shape_str());
  const DType want = matrix ? dev->weight_dtype(t.dtype) : dev->compute_dtype();
  Tensor out = fetch(t, t.data + size_t(first) * kernels::dtype_size(t.dtype), shape[0], count, shape[1],
                     {shape[0], count}, want, dev);
  report(name, size_t(shape[0] * count) * kernels::dtype_size(t.dtype));
  return out;
}

ProgressFn log_progress(const std::string& what) {
  auto last = std::make_shared<int>(-1);
  return [what, last](const LoadProgress& p) {
    if (p.total_bytes == 0) return;
    int pct = static_cast<int>(100.0 * double(p.done_bytes) / double(p.total_bytes));
    if (pct / 10 != *last / 10 || p.done_tensors == p.total_tensors) {
      if (pct == *last) return;
      *last = pct;
      spdlog::info("loading {}: {:3d}% ({} of {} tensors, {:.1f} of {:.1f} MiB)", what, pct, p.done_tensors,
                   p.total_tensors, double(p.done_bytes) / (1 << 20), double(p.total_bytes) / (1 << 20));
    }
  };
}

}  // namespace omni
