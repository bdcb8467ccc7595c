#include "kernels/device.h"

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace omni::kernels {

std::string DeviceId::str() const {
  return (kind == Kind::CPU ? "cpu:" : "cuda:") + std::to_string(index);
}

DeviceId DeviceId::parse(const std::string& text) {
  DeviceId id;
  std::string kind = text, idx;
  auto colon = text.find(':');
  if (colon != std::string::npos) {
    kind = text.substr(0, colon);
    idx = text.substr(colon + 1);
  }
  if (kind == "cpu") id.kind = Kind::CPU;
  else if (kind == "cuda" || kind == "gpu") id.kind = Kind::CUDA;
  else throw std::invalid_argument("unknown device '" + text + "' (expected cpu:N or cuda:N)");
  if (!idx.empty()) {
    if (idx.find_first_not_of("0123456789") != std::string::npos || idx.size() > 4)
      throw std::invalid_argument("bad device index in '" + text + "'");
    id.index = std::stoi(idx);
  }
  return id;
}

std::vector<DeviceId> DeviceId::parse_list(const std::string& text) {
  std::vector<DeviceId> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) throw std::invalid_argument("empty entry in device list '" + text + "'");
    out.push_back(parse(item));
  }
  if (out.empty()) throw std::invalid_argument("empty device list");
  return out;
}

size_t host_available_memory() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  size_t kb = 0;
  std::string unit;
  while (f >> key >> kb >> unit) {
    if (key == "MemAvailable:") return kb * 1024;
  }
  return static_cast<size_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace omni::kernels
