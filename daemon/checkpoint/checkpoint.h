#pragma once
// A Hugging Face checkpoint folder: config.json plus model.safetensors, or shards
// listed by model.safetensors.index.json. Tensors are looked up by name across shards.
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "checkpoint/safetensors.h"

namespace omni {

class Checkpoint {
 public:
  explicit Checkpoint(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const nlohmann::json& config() const { return config_; }
  bool contains(const std::string& name) const;
  // The tensor, checked to have `shape` when given; errors name the file and tensor.
  const TensorView& get(const std::string& name) const;
  const TensorView& get(const std::string& name, const std::vector<int64_t>& shape) const;
  std::vector<std::string> names() const;
  // Reads a JSON file of the folder (config.json, preprocessor_config.json, ...).
  static nlohmann::json read_json(const std::string& path);

 private:
  std::string dir_;
  nlohmann::json config_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile*> where_;
};

}  // namespace omni
