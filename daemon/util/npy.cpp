#include "util/npy.h"

#include <cstring>
#include <fstream>
#include <sstream>

#include "util/error.h"

namespace omni {

int64_t NpyArray::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace {

size_t descr_size(const std::string& d, const std::string& path) {
  if (d == "<f4" || d == "<i4" || d == "<u4") return 4;
  if (d == "<f8" || d == "<i8" || d == "<u8") return 8;
  if (d == "|b1" || d == "|u1" || d == "|i1") return 1;
  if (d == "<f2" || d == "<i2" || d == "<u2") return 2;
  throw Error(path + ": unsupported .npy dtype '" + d + "'");
}

// Finds the value text following 'key': in the header dict.
std::string dict_value(const std::string& h, const std::string& key, const std::string& path) {
  auto k = h.find("'" + key + "'");
  if (k == std::string::npos) throw Error(path + ": .npy header lacks '" + key + "'");
  auto colon = h.find(':', k);
  if (colon == std::string::npos) throw Error(path + ": malformed .npy header");
  return h.substr(colon + 1);
}

}  // namespace

NpyArray read_npy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(path + ": cannot open");
  char magic[8];
  if (!f.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0)
    throw Error(path + ": not a .npy file");
  uint32_t hlen = 0;
  if (magic[6] == 1) {
    uint8_t b[2];
    if (!f.read(reinterpret_cast<char*>(b), 2)) throw Error(path + ": truncated .npy header");
    hlen = b[0] | (b[1] << 8);
  } else {
    uint8_t b[4];
    if (!f.read(reinterpret_cast<char*>(b), 4)) throw Error(path + ": truncated .npy header");
    hlen = b[0] | (b[1] << 8) | (b[2] << 16) | (uint32_t(b[3]) << 24);
  }
  if (hlen > (1u << 20)) throw Error(path + ": .npy header too large");
  std::string h(hlen, '\0');
  if (!f.read(h.data(), hlen)) throw Error(path + ": truncated .npy header");

  NpyArray a;
  std::string dv = dict_value(h, "descr", path);
  auto q1 = dv.find('\'');
  auto q2 = dv.find('\'', q1 + 1);
  if (q1 == std::string::npos || q2 == std::string::npos) throw Error(path + ": bad descr");
  a.descr = dv.substr(q1 + 1, q2 - q1 - 1);
  std::string fo = dict_value(h, "fortran_order", path);
  if (fo.substr(fo.find_first_not_of(' '), 5) != "False")
    throw Error(path + ": Fortran-order .npy not supported");
  std::string sv = dict_value(h, "shape", path);
  auto p1 = sv.find('(');
  auto p2 = sv.find(')');
  if (p1 == std::string::npos || p2 == std::string::npos) throw Error(path + ": bad shape");
  std::stringstream ss(sv.substr(p1 + 1, p2 - p1 - 1));
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.find_first_not_of(" ") == std::string::npos) continue;
    a.shape.push_back(std::stoll(item));
  }
  size_t n = static_cast<size_t>(a.numel()) * descr_size(a.descr, path);
  a.bytes.resize(n);
  if (!f.read(reinterpret_cast<char*>(a.bytes.data()), static_cast<std::streamsize>(n)))
    throw Error(path + ": truncated .npy data");
  return a;
}

std::vector<float> NpyArray::as_float() const {
  std::vector<float> out(static_cast<size_t>(numel()));
  if (descr == "<f4") {
    std::memcpy(out.data(), bytes.data(), out.size() * 4);
  } else if (descr == "<f8") {
    for (size_t i = 0; i < out.size(); ++i) {
      double d;
      std::memcpy(&d, bytes.data() + i * 8, 8);
      out[i] = static_cast<float>(d);
    }
  } else {
    throw Error("npy: expected a float array, got '" + descr + "'");
  }
  return out;
}

std::vector<int32_t> NpyArray::as_int32() const {
  std::vector<int32_t> out(static_cast<size_t>(numel()));
  if (descr == "<i4") {
    std::memcpy(out.data(), bytes.data(), out.size() * 4);
  } else if (descr == "<i8") {
    for (size_t i = 0; i < out.size(); ++i) {
      int64_t d;
      std::memcpy(&d, bytes.data() + i * 8, 8);
      out[i] = static_cast<int32_t>(d);
    }
  } else if (descr == "|b1" || descr == "|u1") {
    for (size_t i = 0; i < out.size(); ++i) out[i] = bytes[i];
  } else {
    throw Error("npy: expected an integer array, got '" + descr + "'");
  }
  return out;
}

namespace {

void write_raw(const std::string& path, const char* descr, const void* data, size_t elem,
               const std::vector<int64_t>& shape) {
  std::string sh = "(";
  size_t n = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    sh += std::to_string(shape[i]);
    sh += (shape.size() == 1 || i + 1 < shape.size()) ? "," : "";
    if (i + 1 < shape.size()) sh += " ";
    n *= static_cast<size_t>(shape[i]);
  }
  sh += ")";
  std::string h = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + sh + ", }";
  size_t total = 10 + h.size() + 1;
  h.append((64 - total % 64) % 64, ' ');
  h += '\n';
  std::ofstream f(path, std::ios::binary);
  if (!f) throw Error(path + ": cannot write");
  f.write("\x93NUMPY\x01\x00", 8);
  uint8_t len[2] = {static_cast<uint8_t>(h.size() & 0xff), static_cast<uint8_t>(h.size() >> 8)};
  f.write(reinterpret_cast<const char*>(len), 2);
  f.write(h.data(), static_cast<std::streamsize>(h.size()));
  f.write(static_cast<const char*>(data), static_cast<std::streamsize>(n * elem));
  if (!f) throw Error(path + ": write failed");
}

}  // namespace

void write_npy(const std::string& path, const float* data, const std::vector<int64_t>& shape) {
  write_raw(path, "<f4", data, 4, shape);
}
void write_npy(const std::string& path, const int32_t* data, const std::vector<int64_t>& shape) {
  write_raw(path, "<i4", data, 4, shape);
}

}  // namespace omni
