#pragma once
// A dense, row-major tensor on one device. Storage is shared; views select a range
// of rows (the outermost dimension), which is all the model code needs.
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "device.h"

namespace omni::kernels {

class Storage {
 public:
  Storage(std::shared_ptr<Device> dev, size_t bytes);
  // Host memory the device uses where it lies (Device::adopt_host), kept valid by `keep`.
  Storage(std::shared_ptr<Device> dev, const void* host, size_t bytes, std::shared_ptr<const void> keep);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  Device& device() const { return *dev_; }
  const std::shared_ptr<Device>& device_ptr() const { return dev_; }

 private:
  std::shared_ptr<Device> dev_;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
  std::shared_ptr<const void> keep_;   // set for adopted host memory, which is not the device's to free
};

class Tensor {
 public:
  Tensor() = default;
  // Allocates an uninitialised tensor on `dev`.
  static Tensor empty(const std::shared_ptr<Device>& dev, DType dtype, std::vector<int64_t> shape);
  // Allocates on `dev` and fills from host float32 data (converted to `dtype`).
  static Tensor from_host(const std::shared_ptr<Device>& dev, DType dtype, std::vector<int64_t> shape,
                          const float* host);
  static Tensor from_host_i32(const std::shared_ptr<Device>& dev, std::vector<int64_t> shape,
                              const int32_t* host);
  // A tensor over host memory already in `dtype` (a checkpoint's memory map), used where it
  // lies when the device can (Device::adopt_host: cpu devices) and `host` is aligned for
  // `dtype`; an undefined Tensor otherwise, and the caller copies. `keep` keeps `host` valid.
  static Tensor adopt_host(const std::shared_ptr<Device>& dev, DType dtype, std::vector<int64_t> shape,
                           const void* host, std::shared_ptr<const void> keep);

  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const { return shape_.at(i < 0 ? shape_.size() + i : i); }
  int64_t numel() const;
  size_t nbytes() const { return size_t(rows()) * row_bytes(dtype_, cols()); }
  // Rows = outermost dimension; cols = product of the others.
  int64_t rows() const { return shape_.empty() ? 1 : shape_[0]; }
  int64_t cols() const { return rows() == 0 ? 0 : numel() / rows(); }

  Device& device() const { return storage_->device(); }
  const std::shared_ptr<Device>& device_ptr() const { return storage_->device_ptr(); }
  void* raw() const { return static_cast<char*>(storage_->data()) + offset_; }
  template <class T> T* data() const { return static_cast<T*>(raw()); }

  // Rows [first, first + count) as a view sharing storage.
  Tensor rows_view(int64_t first, int64_t count) const;
  // Same storage, another shape with the same element count (for Q8_0, the same row width).
  Tensor reshape(std::vector<int64_t> shape) const;

  // Copies to host float32 (converting from the stored dtype).
  std::vector<float> to_host() const;
  std::string describe() const;   // "BF16[4, 64] on cpu:0"

 private:
  std::shared_ptr<Storage> storage_;
  size_t offset_ = 0;
  DType dtype_ = DType::F32;
  std::vector<int64_t> shape_;
};

}  // namespace omni::kernels
