#include "cli/read_file.h"

#include <filesystem>
#include <fstream>

#include "util/error.h"

namespace omni {

std::vector<uint8_t> read_file_bytes(const std::string& path, size_t max_bytes) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  if (ec) throw Error(path + ": cannot read: " + ec.message());
  if (size > max_bytes)
    throw Error(path + ": " + std::to_string(size) + " bytes exceeds the limit of " + std::to_string(max_bytes));
  std::ifstream f(path, std::ios::binary);
  std::vector<uint8_t> out(size);
  if (!f.read(reinterpret_cast<char*>(out.data()), std::streamsize(size))) throw Error(path + ": read failed");
  return out;
}

}  // namespace omni
