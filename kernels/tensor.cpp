#include "kernels/tensor.h"

#include <algorithm>
#include <cstdint>
#include <stdexcept>

#include "kernels/backend.h"
#include "kernels/ops.h"

namespace omni::kernels {

Storage::Storage(std::shared_ptr<Device> dev, size_t bytes) : dev_(std::move(dev)), bytes_(bytes) {
  ptr_ = dev_->alloc(bytes ? bytes : 1);
}

Storage::Storage(std::shared_ptr<Device> dev, const void* host, size_t bytes, std::shared_ptr<const void> keep)
    : dev_(std::move(dev)), ptr_(const_cast<void*>(host)), bytes_(bytes), keep_(std::move(keep)) {}

Storage::~Storage() {
  if (keep_) dev_->unadopt_host(bytes_);
  else dev_->release(ptr_, bytes_ ? bytes_ : 1);
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;
  return n;
}

Tensor Tensor::empty(const std::shared_ptr<Device>& dev, DType dtype, std::vector<int64_t> shape) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  for (int64_t d : t.shape_)
    if (d < 0) throw std::invalid_argument("negative tensor dimension");
  t.storage_ = std::make_shared<Storage>(dev, t.nbytes());
  return t;
}

Tensor Tensor::from_host(const std::shared_ptr<Device>& dev, DType dtype, std::vector<int64_t> shape,
                         const float* host) {
  if (dtype == DType::I32) throw std::invalid_argument("from_host: I32 tensors come from from_host_i32");
  Tensor t = empty(dev, dtype, std::move(shape));
  if (dtype == DType::F32) {
    dev->upload(t.raw(), host, t.nbytes());
  } else {
    std::vector<uint8_t> tmp(t.nbytes());
    convert_rows_from_f32(host, dtype, t.rows(), t.cols(), tmp.data());
    dev->upload(t.raw(), tmp.data(), tmp.size());
  }
  return t;
}

Tensor Tensor::adopt_host(const std::shared_ptr<Device>& dev, DType dtype, std::vector<int64_t> shape,
                          const void* host, std::shared_ptr<const void> keep) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  const size_t align = std::max<size_t>(1, dtype_size(dtype));
  if (reinterpret_cast<uintptr_t>(host) % align != 0 || !dev->adopt_host(t.nbytes())) return {};
  t.storage_ = std::make_shared<Storage>(dev, host, t.nbytes(), keep ? std::move(keep) : std::make_shared<int>(0));
  return t;
}

Tensor Tensor::from_host_i32(const std::shared_ptr<Device>& dev, std::vector<int64_t> shape,
                             const int32_t* host) {
  Tensor t = empty(dev, DType::I32, std::move(shape));
  dev->upload(t.raw(), host, t.nbytes());
  return t;
}

Tensor Tensor::rows_view(int64_t first, int64_t count) const {
  if (first < 0 || count < 0 || first + count > rows())
    throw std::out_of_range("rows_view [" + std::to_string(first) + ", +" + std::to_string(count) +
                            ") out of " + describe());
  Tensor t = *this;
  if (t.shape_.empty()) t.shape_ = {1};
  t.offset_ += size_t(first) * row_bytes(dtype_, cols());
  t.shape_[0] = count;
  return t;
}

Tensor Tensor::reshape(std::vector<int64_t> shape) const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  if (n != numel()) throw std::invalid_argument("reshape of " + describe() + ": element count differs");
  Tensor t = *this;
  t.shape_ = std::move(shape);
  if (dtype_ == DType::Q8_0 && t.cols() != cols())
    throw std::invalid_argument("reshape of " + describe() + ": a Q8_0 tensor keeps its row width");
  return t;
}

std::vector<float> Tensor::to_host() const {
  size_t n = static_cast<size_t>(numel());
  std::vector<uint8_t> raw_bytes(nbytes());
  device().download(raw_bytes.data(), raw(), raw_bytes.size());
  std::vector<float> out(n);
  convert_rows_to_f32(raw_bytes.data(), dtype_, rows(), cols(), out.data());
  return out;
}

std::string Tensor::describe() const {
  std::string s(dtype_name(dtype_));
  s += "[";
  for (size_t i = 0; i < shape_.size(); ++i) s += (i ? ", " : "") + std::to_string(shape_[i]);
  s += "]";
  if (storage_) s += " on " + device().id().str();
  return s;
}

void copy_between(const Tensor& src, Tensor& dst) {
  if (src.numel() != dst.numel())
    throw std::invalid_argument("copy_between: " + src.describe() + " -> " + dst.describe());
  if (&src.device() == &dst.device()) {
    dst.device().ops().copy(src, dst);
    return;
  }
  // Two devices of one backend, same dtype: the backend's own path (GPU peer copies).
  const DeviceId::Kind kind = src.device().id().kind;
  if (src.dtype() == dst.dtype() && kind == dst.device().id().kind)
    if (const Backend* b = backend_for(kind); b && b->copy_between_devices(src, dst)) return;
  // Host bounce: exact for equal dtypes; converts through float32 otherwise.
  if (src.dtype() == dst.dtype()) {
    std::vector<uint8_t> tmp(src.nbytes());
    src.device().download(tmp.data(), src.raw(), tmp.size());
    dst.device().upload(dst.raw(), tmp.data(), tmp.size());
    return;
  }
  std::vector<float> host = src.to_host();
  Tensor staged = Tensor::from_host(dst.device_ptr(), dst.dtype(), dst.shape(), host.data());
  dst.device().ops().copy(staged, dst);
}

}  // namespace omni::kernels
