#pragma once
// A read-only memory map of a whole file; pages are read only when touched, so a
// device that owns a few tensors of a large shard reads only those.
#include <cstddef>
#include <cstdint>
#include <string>

namespace omni {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Lets the kernel take back the pages of [p, p + n) that lie wholly inside (a tensor copied
// out of a map no longer needs its file pages counted in this process's memory); a later
// read faults them in again from the file, so this is always safe.
void drop_mapped_pages(const void* p, size_t n);

}  // namespace omni
