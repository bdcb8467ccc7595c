#include "checkpoint/checkpoint.h"

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
}

bool Checkpoint::contains(const std::string& name) const { return where_.count(name) != 0; }

const TensorView& Checkpoint::get(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) {
    std::string files;
    for (const auto& f : files_) files += (files.empty() ? "" : ", ") + f->path();
    throw Error(files + ": missing tensor '" + name + "'");
  }
  return it->second->get(name);
}

const TensorView& Checkpoint::get(const std::string& name, const std::vector<int64_t>& shape) const {
  const TensorView& t = get(name);
  if (t.shape != shape) {
    TensorView want;
    want.shape = shape;
    throw Error(t.file + ": tensor '" + name + "' has shape " + t.shape_str() + " but config.json implies " +
                want.shape_str());
  }
  return t;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : where_) out.push_back(k);
  return out;
}

}  // namespace omni
