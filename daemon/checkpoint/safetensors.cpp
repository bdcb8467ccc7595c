#include "checkpoint/safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "util/error.h"

namespace omni {

using kernels::DType;

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorView::shape_str() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

namespace {

// Header sizes beyond this are not a checkpoint but an attack or a corrupt file.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

// Sets t.dtype (or t.raw_u8) from the header's dtype; returns the bytes per element.
size_t parse_dtype(const std::string& s, TensorView& t) {
  if (s == "U8") {
    t.raw_u8 = true;
    return 1;
  }
  if (s == "BF16") t.dtype = DType::BF16;
  else if (s == "F16") t.dtype = DType::F16;
  else if (s == "F32") t.dtype = DType::F32;
  else
    throw Error(t.file + ": tensor '" + t.name + "' has unsupported dtype '" + s +
                "' (supported: BF16, F16, F32, and U8 for bitsandbytes 4-bit weights)");
  return kernels::dtype_size(t.dtype);
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path) : map_(std::make_shared<const MappedFile>(path)) {
  const uint8_t* d = map_->data();
  const size_t size = map_->size();
  if (size < 8) throw Error(path + ": truncated safetensors file (" + std::to_string(size) + " bytes)");
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | d[i];
  if (hlen > kMaxHeaderBytes || hlen > size - 8)
    throw Error(path + ": safetensors header length " + std::to_string(hlen) + " exceeds the file size " +
                std::to_string(size) + " (truncated or not a safetensors file)");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(d + 8, d + 8 + hlen);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": garbled safetensors header: " + e.what());
  }
  if (!header.is_object()) throw Error(path + ": safetensors header is not a JSON object");
  const uint8_t* base = d + 8 + hlen;
  const uint64_t data_size = size - 8 - hlen;

  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const std::string& name = it.key();
    const auto& e = it.value();
    try {
      TensorView t;
      t.name = name;
      t.file = path;
      const size_t esz = parse_dtype(e.at("dtype").get<std::string>(), t);
      for (const auto& dim : e.at("shape")) {
        int64_t v = dim.get<int64_t>();
        if (v < 0 || v > (int64_t(1) << 40)) throw Error(path + ": tensor '" + name + "' has a bad dimension");
        t.shape.push_back(v);
      }
      const auto& off = e.at("data_offsets");
      if (!off.is_array() || off.size() != 2) throw Error(path + ": tensor '" + name + "': bad data_offsets");
      uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
      if (begin > end || end > data_size)
        throw Error(path + ": tensor '" + name + "' data_offsets [" + std::to_string(begin) + ", " +
                    std::to_string(end) + ") lie outside the " + std::to_string(data_size) +
                    "-byte data section (truncated file?)");
      const uint64_t expect = static_cast<uint64_t>(t.numel()) * esz;
      if (end - begin != expect)
        throw Error(path + ": tensor '" + name + "' spans " + std::to_string(end - begin) +
                    " bytes but its shape " + t.shape_str() + " and dtype need " + std::to_string(expect));
      t.data = base + begin;
      t.bytes = end - begin;
      t.owner = map_;
      ranges.emplace_back(begin, end);
      tensors_.emplace(name, std::move(t));
    } catch (const nlohmann::json::exception& ex) {
      throw Error(path + ": tensor '" + name + "' has a malformed header entry: " + ex.what());
    }
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second)
      throw Error(path + ": tensors overlap in the data section (corrupt header)");
}

const TensorView& SafetensorsFile::get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw Error(path() + ": missing tensor '" + name + "'");
  return it->second;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : tensors_) out.push_back(k);
  return out;
}

}  // namespace omni
