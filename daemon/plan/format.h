#pragma once
// Byte sizes for people ("12.5 MiB") and from people ("64MiB", "1.5GiB", "512M", "1000").
#include <cstdint>
#include <string>

namespace omni::plan {

std::string format_bytes(int64_t bytes);
// Throws omni::Error naming `what` when `text` is not a size.
int64_t parse_bytes(const std::string& text, const std::string& what);

}  // namespace omni::plan
