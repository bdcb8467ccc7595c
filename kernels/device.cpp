#include "kernels/device.h"

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "kernels/cpu/cpu_device.h"

#if defined(OMNI_HAVE_CUDA)
#include "kernels/cuda/cuda_device.h"
#endif

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

std::shared_ptr<Device> make_device(const DeviceId& id, size_t memory_cap) {
  if (id.kind == DeviceId::Kind::CPU) {
    size_t cap = memory_cap ? memory_cap : host_available_memory();
    return std::make_shared<CpuDevice>(id.index, cap);
  }
#if defined(OMNI_HAVE_CUDA)
  return make_cuda_device(id.index, memory_cap);
#else
  throw std::runtime_error("device " + id.str() + " requested, but omnid was built without CUDA");
#endif
}

#if !defined(OMNI_HAVE_CUDA)
int cuda_device_count() { return 0; }
#endif

}  // namespace omni::kernels
