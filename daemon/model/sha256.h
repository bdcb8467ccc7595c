#pragma once
// Full-width SHA-256 of a byte buffer, as 64 hex digits: the vision-cache key.
#include <cstddef>
#include <cstdint>
#include <string>

namespace omni {
std::string sha256_hex(const uint8_t* data, size_t size);
}
