#pragma once
// One .safetensors file: an 8-byte little-endian header length, a JSON header naming
// each tensor's dtype, shape and byte range, then the data. Everything in the header
// is checked against the file before a tensor is handed out.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/mapped_file.h"
#include "kernels/dtype.h"

namespace omni {

struct TensorView {
  std::string name;
  std::string file;              // path of the file holding it, for messages
  kernels::DType dtype = kernels::DType::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr; // inside the memory map
  size_t bytes = 0;
  // Keeps `data` valid: a tensor kept in the checkpoint's own dtype on a cpu device is read
  // straight from the map (model/weight_loader.cpp), so the map lives as long as it does.
  std::shared_ptr<const void> owner;
  // A U8 tensor (bitsandbytes' packed 4-bit codes and quant states, checkpoint/bnb_nf4.h) is
  // raw bytes, not elements of a kernels dtype: `dtype` means nothing for it, and
  // Checkpoint::get refuses to hand it out as weights.
  bool raw_u8 = false;
  // False for a tensor held on the heap (a dequantized NF4 weight), not in the file's map:
  // the loader must not hand its pages back (madvise would zero them).
  bool file_backed = true;

  int64_t numel() const;
  std::string shape_str() const;  // "[64, 128]"
};

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);

  const std::string& path() const { return map_->path(); }
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  const TensorView& get(const std::string& name) const;   // throws naming file and tensor
  std::vector<std::string> names() const;

 private:
  std::shared_ptr<const MappedFile> map_;
  std::map<std::string, TensorView> tensors_;
};

}  // namespace omni
