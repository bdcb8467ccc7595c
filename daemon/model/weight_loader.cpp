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
  state_.total_bytes += ckpt_.get(name).bytes;
  state_.total_tensors += 1;
}

void WeightLoader::report(const std::string& name, size_t bytes) {
  const size_t size = ckpt_.get(name).bytes;
  auto [it, first] = done_.try_emplace(name, 0);
  if (first) state_.done_tensors += 1;
  const size_t add = std::min(bytes, size - it->second);
  it->second += add;
  state_.done_bytes += add;
  if (progress_) progress_(state_);
}

namespace {

// Converts a block of checkpoint elements into the device dtype on the host, then uploads.
Tensor upload(const TensorView& src, const uint8_t* first, size_t n, std::vector<int64_t> shape,
              const std::shared_ptr<kernels::Device>& dev, int64_t row_stride_elems = -1, int64_t rows = 0,
              int64_t cols = 0) {
  const DType want = dev->compute_dtype();
  const size_t esz = kernels::dtype_size(src.dtype);
  std::vector<float> host(n);
  if (row_stride_elems < 0) {
    kernels::convert_to_f32(first, src.dtype, host.data(), n);
  } else {  // strided column block
    for (int64_t r = 0; r < rows; ++r)
      kernels::convert_to_f32(first + size_t(r * row_stride_elems) * esz, src.dtype, host.data() + r * cols,
                              size_t(cols));
  }
  return Tensor::from_host(dev, want, std::move(shape), host.data());
}

}  // namespace

Tensor WeightLoader::load(const std::string& name, const std::vector<int64_t>& shape,
                          const std::shared_ptr<kernels::Device>& dev) {
  const TensorView& t = ckpt_.get(name, shape);
  Tensor out = upload(t, t.data, size_t(t.numel()), shape, dev);
  report(name, t.bytes);
  return out;
}

Tensor WeightLoader::load_rows(const std::string& name, const std::vector<int64_t>& shape, int64_t first,
                               int64_t count, const std::shared_ptr<kernels::Device>& dev) {
  const TensorView& t = ckpt_.get(name, shape);
  const int64_t cols = shape.size() > 1 ? t.numel() / shape[0] : 1;
  if (first < 0 || count < 0 || first + count > shape[0])
    throw Error(t.file + ": rows [" + std::to_string(first) + ", " + std::to_string(first + count) +
                ") outside tensor '" + name + "' " + t.shape_str());
  std::vector<int64_t> s = shape;
  s[0] = count;
  Tensor out = upload(t, t.data + size_t(first * cols) * kernels::dtype_size(t.dtype), size_t(count * cols), s, dev);
  report(name, size_t(count * cols) * kernels::dtype_size(t.dtype));
  return out;
}

Tensor WeightLoader::load_cols(const std::string& name, const std::vector<int64_t>& shape, int64_t first,
                               int64_t count, const std::shared_ptr<kernels::Device>& dev) {
  const TensorView& t = ckpt_.get(name, shape);
  if (shape.size() != 2 || first < 0 || count < 0 || first + count > shape[1])
    throw Error(t.file + ": columns [" + std::to_string(first) + ", " + std::to_string(first + count) +
                ") outside tensor '" + name + "' " + t.shape_str());
  Tensor out = upload(t, t.data + size_t(first) * kernels::dtype_size(t.dtype), size_t(shape[0] * count),
                      {shape[0], count}, dev, shape[1], shape[0], count);
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
