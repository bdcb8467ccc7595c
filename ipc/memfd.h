// ipc/memfd.h - images travel as sealed memfds passed over the socket (SCM_RIGHTS).
//
// Sender: make_sealed_memfd(bytes) (or MemfdWriter to fill the memory in place),
// then send the descriptor with the generate frame. The memfd is created with
// MFD_ALLOW_SEALING|MFD_CLOEXEC and sealed with F_SEAL_SHRINK|F_SEAL_GROW|
// F_SEAL_WRITE|F_SEAL_SEAL, so it can never change after the receiver checks it.
// Receiver: map_sealed_image(fd, declared_size, limits) checks that the fd is a
// regular sealable file with at least SHRINK|GROW|WRITE seals and exactly the
// declared size (<= max_image_bytes, a video max_video_bytes), then maps it PROT_READ. No names in /dev/shm.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "ipc/limits.h"
#include "ipc/unique_fd.h"

namespace omni::ipc {

/// Copy `bytes` into a new memfd and seal it. Throws IpcError(internal) on failure,
/// IpcError(bad_image) for an empty buffer.
UniqueFd make_sealed_memfd(std::span<const uint8_t> bytes, const char* debug_name = "omni-image");

/// Fill a memfd in place (e.g. decode straight into it), then seal().
class MemfdWriter {
 public:
  explicit MemfdWriter(std::size_t size, const char* debug_name = "omni-image");
  ~MemfdWriter();
  MemfdWriter(const MemfdWriter&) = delete;
  MemfdWriter& operator=(const MemfdWriter&) = delete;
  uint8_t* data() noexcept { return static_cast<uint8_t*>(map_); }
  std::size_t size() const noexcept { return size_; }
  /// Unmap, apply all seals and hand over the descriptor. The writer is empty after.
  UniqueFd seal();

 private:
  UniqueFd fd_;
  void* map_ = nullptr;
  std::size_t size_ = 0;
};

/// A read-only mapping of a checked image memfd (unmapped on destruction).
class ImageMapping {
 public:
  ImageMapping() = default;
  ImageMapping(const void* p, std::size_t n) : data_(static_cast<const uint8_t*>(p)), size_(n) {}
  ImageMapping(ImageMapping&& o) noexcept;
  ImageMapping& operator=(ImageMapping&& o) noexcept;
  ImageMapping(const ImageMapping&) = delete;
  ImageMapping& operator=(const ImageMapping&) = delete;
  ~ImageMapping();
  const uint8_t* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  std::span<const uint8_t> bytes() const noexcept { return {data_, size_}; }

 private:
  const uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

/// Seals every image memfd must carry.
int required_seals() noexcept;

/// Check a received descriptor and map it read-only. Throws IpcError(bad_image)
/// (not a sealable file, missing seals, size mismatch) or IpcError(too_large).
/// Does not take ownership: the caller still closes `fd` (the mapping stays valid).
/// `video`: the memfd holds a video, bounded by max_video_bytes instead of max_image_bytes.
ImageMapping map_sealed_image(int fd, uint64_t declared_size, const Limits& limits, bool video = false);

}  // namespace omni::ipc
