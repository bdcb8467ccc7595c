#pragma once
// Full-width SHA-256: of a byte buffer as 64 hex digits (the vision-cache key), or raw
// (the KV blocks' prefix hashes, model/kv_pool.h).
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace omni {
std::string sha256_hex(const uint8_t* data, size_t size);
using Sha256 = std::array<uint8_t, 32>;
Sha256 sha256(const uint8_t* data, size_t size);
}
