#include "ipc/memfd.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "ipc/error.h"

namespace omni::ipc {

namespace {
constexpr int kAllSeals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL;

[[noreturn]] void sys_fail(const char* what) {
  throw IpcError(ErrorCode::internal, std::string(what) + ": " + std::strerror(errno));
}

UniqueFd new_memfd(std::size_t size, const char* name) {
  UniqueFd fd(::memfd_create(name, MFD_ALLOW_SEALING | MFD_CLOEXEC));
  if (!fd) sys_fail("memfd_create");
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) sys_fail("ftruncate");
  return fd;
}
}  // namespace

int required_seals() noexcept { return F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE; }

UniqueFd make_sealed_memfd(std::span<const uint8_t> bytes, const char* debug_name) {
  if (bytes.empty()) throw IpcError(ErrorCode::bad_image, "empty image");
  UniqueFd fd = new_memfd(bytes.size(), debug_name);
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::pwrite(fd.get(), bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      sys_fail("pwrite");
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fcntl(fd.get(), F_ADD_SEALS, kAllSeals) != 0) sys_fail("F_ADD_SEALS");
  return fd;
}

MemfdWriter::MemfdWriter(std::size_t size, const char* debug_name) : size_(size) {
  if (size == 0) throw IpcError(ErrorCode::bad_image, "empty image");
  fd_ = new_memfd(size, debug_name);
  map_ = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    sys_fail("mmap");
  }
}

MemfdWriter::~MemfdWriter() {
  if (map_) ::munmap(map_, size_);
}

UniqueFd MemfdWriter::seal() {
  if (map_) {
    ::munmap(map_, size_);  // F_SEAL_WRITE fails with EBUSY while a writable mapping exists
    map_ = nullptr;
  }
  if (!fd_) throw IpcError(ErrorCode::internal, "MemfdWriter already sealed");
  if (::fcntl(fd_.get(), F_ADD_SEALS, kAllSeals) != 0) sys_fail("F_ADD_SEALS");
  return std::move(fd_);
}

ImageMapping::ImageMapping(ImageMapping&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}

ImageMapping& ImageMapping::operator=(ImageMapping&& o) noexcept {
  if (this != &o) {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

ImageMapping::~ImageMapping() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

ImageMapping map_sealed_image(int fd, uint64_t declared_size, const Limits& limits, bool video) {
  const char* what = video ? "video" : "image";
  const uint64_t max_bytes = video ? limits.max_video_bytes : limits.max_image_bytes;
  if (fd < 0) throw IpcError(ErrorCode::bad_image, "invalid descriptor");
  if (declared_size == 0) throw IpcError(ErrorCode::bad_image, std::string("empty ") + what);
  if (declared_size > max_bytes)
    throw IpcError(ErrorCode::too_large, std::string(what) + " of " + std::to_string(declared_size) +
                                             " bytes exceeds limit " + std::to_string(max_bytes));
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw IpcError(ErrorCode::bad_image, "fstat failed");
  if (!S_ISREG(st.st_mode)) throw IpcError(ErrorCode::bad_image, "descriptor is not a memfd");
  const int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0) throw IpcError(ErrorCode::bad_image, "descriptor does not support seals (not a memfd)");
  if ((seals & required_seals()) != required_seals())
    throw IpcError(ErrorCode::bad_image, "memfd is not sealed against write/shrink/grow");
  if (st.st_size < 0 || static_cast<uint64_t>(st.st_size) != declared_size)
    throw IpcError(ErrorCode::bad_image, "memfd size " + std::to_string(st.st_size) +
                                             " differs from declared size " + std::to_string(declared_size));
  void* p = ::mmap(nullptr, static_cast<std::size_t>(declared_size), PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) throw IpcError(ErrorCode::bad_image, std::string("mmap failed: ") + std::strerror(errno));
  return ImageMapping(p, static_cast<std::size_t>(declared_size));
}

}  // namespace omni::ipc
