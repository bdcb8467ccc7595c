#pragma once
// Reads a whole file into memory, refusing files over `max_bytes` before reading them.
#include <cstdint>
#include <string>
#include <vector>

namespace omni {
std::vector<uint8_t> read_file_bytes(const std::string& path, size_t max_bytes);
}
