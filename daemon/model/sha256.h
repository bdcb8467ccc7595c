#pragma once
// Full-width SHA-256: of a byte buffer as 64 hex digits (the vision-cache key), or raw
// (the KV blocks' prefix hashes, model/kv_pool.h), or of several buffers in turn (a video
// frame group's key, model/video_frames.cpp).
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace omni {
std::string sha256_hex(const uint8_t* data, size_t size);
using Sha256 = std::array<uint8_t, 32>;
Sha256 sha256(const uint8_t* data, size_t size);
std::string to_hex(const Sha256& digest);

class Sha256Stream {
 public:
  Sha256Stream();
  ~Sha256Stream();
  Sha256Stream(const Sha256Stream&) = delete;
  Sha256Stream& operator=(const Sha256Stream&) = delete;
  void update(const uint8_t* data, size_t size);
  Sha256 finish();   // once

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};
}  // namespace omni
