#include "checkpoint/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "util/error.h"

namespace omni {

namespace fs = std::filesystem;

nlohmann::json Checkpoint::read_json(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw Error(path + ": cannot open");
  try {
    return nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": invalid JSON: " + e.what());
  }
}

namespace {

// What config.json says about quantization, where the engine cannot run it.
void check_quantization_config(const nlohmann::json& config, const std::string& src) {
  if (!config.contains("quantization_config")) return;
  const auto& q = config["quantization_config"];
  if (!q.is_object()) throw Error(src + ": quantization_config is not an object");
  const std::string method = q.value("quant_method", "");
  if (method != "bitsandbytes")
    throw Error(src + ": quantization_config.quant_method '" + method +
                "' is not supported (bitsandbytes 4-bit nf4 only)");
  if (q.value("load_in_8bit", false) || q.value("_load_in_8bit", false))
    throw Error(src + ": quantization_config is bitsandbytes 8-bit (LLM.int8), which is not supported (4-bit nf4 only)");
  if (q.contains("bnb_4bit_quant_type") && q["bnb_4bit_quant_type"] != "nf4")
    throw Error(src + ": quantization_config.bnb_4bit_quant_type " + q["bnb_4bit_quant_type"].dump() +
                " is not supported (nf4 only)");
}

}  // namespace

Checkpoint::Checkpoint(const std::string& dir) : dir_(dir) {
  if (!fs::is_directory(dir)) throw Error(dir + ": not a model folder");
  config_ = read_json((fs::path(dir) / "config.json").string());
  if (!config_.is_object()) throw Error(dir + "/config.json: not a JSON object");

  const fs::path single = fs::path(dir) / "model.safetensors";
  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  if (fs::exists(index)) {
    nlohmann::json idx = read_json(index.string());
    if (!idx.contains("weight_map") || !idx["weight_map"].is_object())
      throw Error(index.string() + ": no weight_map object");
    std::map<std::string, const SafetensorsFile*> by_file;
    for (auto it = idx["weight_map"].begin(); it != idx["weight_map"].end(); ++it) {
      if (!it.value().is_string()) throw Error(index.string() + ": weight_map entry '" + it.key() + "' is not a file name");
      std::string shard = it.value().get<std::string>();
      if (shard.find('/') != std::string::npos || shard == ".." )
        throw Error(index.string() + ": shard name '" + shard + "' leaves the model folder");
      auto f = by_file.find(shard);
      if (f == by_file.end()) {
        files_.push_back(std::make_unique<SafetensorsFile>((fs::path(dir) / shard).string()));
        f = by_file.emplace(shard, files_.back().get()).first;
      }
      if (!f->second->contains(it.key()))
        throw Error(f->second->path() + ": missing tensor '" + it.key() + "' (listed in " + index.string() + ")");
      where_[it.key()] = f->second;
    }
  } else if (fs::exists(single)) {
    files_.push_back(std::make_unique<SafetensorsFile>(single.string()));
    for (const auto& n : files_.back()->names()) where_[n] = files_.back().get();
  } else {
    throw Error(dir + ": no model.safetensors or model.safetensors.index.json");
  }
  check_quantization_config(config_, dir + "/config.json");
  find_nf4_weights();
}

const TensorView* Checkpoint::find(const std::string& name) const {
  auto it = where_.find(name);
  return it == where_.end() ? nullptr : &it->second->get(name);
}

void Checkpoint::find_nf4_weights() {
  const std::string suffix = kBnbQuantStateSuffix;
  for (const auto& [name, file] : where_) {
    const size_t at = name.rfind(suffix);
    if (at == std::string::npos) continue;
    const TensorView& st = file->get(name);
    const std::string type = name.substr(at + suffix.size());
    if (type != "nf4")
      throw Error(st.file + ": tensor '" + name + "': bitsandbytes quant type '" + type +
                  "' is not supported (nf4 only)");
    if (!st.raw_u8) throw Error(st.file + ": quant state tensor '" + name + "' is not U8");
    Nf4Entry e;
    e.weight.name = name.substr(0, at);
    e.weight.state = parse_nf4_quant_state(std::string(reinterpret_cast<const char*>(st.data), st.bytes), name);
    e.weight.packed = find(e.weight.name);
    e.weight.absmax = find(e.weight.name + ".absmax");
    e.weight.quant_map = find(e.weight.name + ".quant_map");
    e.weight.nested_absmax = find(e.weight.name + ".nested_absmax");
    e.weight.nested_quant_map = find(e.weight.name + ".nested_quant_map");
    e.weight.check();
    e.view.name = e.weight.name;
    e.view.file = e.weight.packed->file;
    e.view.dtype = e.weight.state.dtype;
    e.view.shape = e.weight.state.shape;
    e.view.bytes = e.weight.dequantized_bytes();
    e.view.file_backed = false;
    nf4_.emplace(e.weight.name, std::move(e));
  }
}

bool Checkpoint::contains(const std::string& name) const { return where_.count(name) != 0; }

const TensorView& Checkpoint::get(const std::string& name) const {
  if (auto q = nf4_.find(name); q != nf4_.end()) {
    std::lock_guard<std::mutex> lock(nf4_mutex_);
    TensorView& v = q->second.view;
    if (!v.data) {
      auto buf = std::shared_ptr<uint8_t[]>(new uint8_t[std::max<size_t>(v.bytes, 1)]);
      q->second.weight.dequantize(buf.get());
      v.data = buf.get();
      v.owner = std::move(buf);
    }
    return v;
  }
  auto it = where_.find(name);
  if (it == where_.end()) {
    std::string files;
    for (const auto& f : files_) files += (files.empty() ? "" : ", ") + f->path();
    throw Error(files + ": missing tensor '" + name + "'");
  }
  const TensorView& t = it->second->get(name);
  if (t.raw_u8)
    throw Error(t.file + ": tensor '" + name + "' is U8 (raw bytes), not weights: a bitsandbytes 4-bit weight needs "
                "its quant state '" + name + kBnbQuantStateSuffix + "nf4'");
  return t;
}

Checkpoint::Bytes Checkpoint::bytes(const std::string& name) const {
  if (auto q = nf4_.find(name); q != nf4_.end()) return {q->second.weight.packed->bytes, q->second.view.bytes};
  // Raw U8 tensors too (an NF4 weight's scales and quant state): sizes are no hand-out.
  const TensorView* t = find(name);
  if (!t) return {get(name).bytes, 0};   // get() names the missing tensor
  return {t->bytes, t->bytes};
}

void Checkpoint::release(const std::string& name) const {
  auto q = nf4_.find(name);
  if (q == nf4_.end()) return;
  std::lock_guard<std::mutex> lock(nf4_mutex_);
  q->second.view.data = nullptr;
  q->second.view.owner.reset();
}

size_t Checkpoint::held_bytes() const {
  std::lock_guard<std::mutex> lock(nf4_mutex_);
  size_t n = 0;
  for (const auto& [name, e] : nf4_)
    if (e.view.data) n += e.view.bytes;
  return n;
}

std::vector<const Nf4Weight*> Checkpoint::nf4_weights() const {
  std::vector<const Nf4Weight*> out;
  for (const auto& [name, e] : nf4_) out.push_back(&e.weight);
  return out;
}

const TensorView& Checkpoint::get(const std::string& name, const std::vector<int64_t>& shape) const {
  // An NF4 weight's shape is known without dequantizing it (and never changes).
  const auto q = nf4_.find(name);
  const TensorView& t = q != nf4_.end() ? q->second.view : get(name);
  if (t.shape != shape) {
    TensorView want;
    want.shape = shape;
    throw Error(t.file + ": tensor '" + name + "' has shape " + t.shape_str() + " but config.json implies " +
                want.shape_str());
  }
  return q != nf4_.end() ? get(name) : t;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : where_) out.push_back(k);
  return out;
}

}  // namespace omni
