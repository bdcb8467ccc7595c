#pragma once
// A Hugging Face checkpoint folder: config.json plus model.safetensors, or shards
// listed by model.safetensors.index.json. Tensors are looked up by name across shards.
// bitsandbytes NF4 weights (checkpoint/bnb_nf4.h) are handed out as ordinary tensors of
// their quant state's dtype and shape, dequantized when first asked for; the loader
// releases each copy once it is on its device.
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "checkpoint/bnb_nf4.h"
#include "checkpoint/safetensors.h"

namespace omni {

class Checkpoint {
 public:
  explicit Checkpoint(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const nlohmann::json& config() const { return config_; }
  bool contains(const std::string& name) const;
  // The tensor, checked to have `shape` when given; errors name the file and tensor. An
  // NF4 weight is dequantized here (once, until release()); a U8 tensor that is not one is
  // refused.
  const TensorView& get(const std::string& name) const;
  const TensorView& get(const std::string& name, const std::vector<int64_t>& shape) const;
  std::vector<std::string> names() const;

  // A tensor's size without reading it: in its file (an NF4 weight: its packed codes; its
  // scales and tables are tensors of their own, so sums over names() add up to the files;
  // Nf4Weight::file_bytes() has them all) and as get() hands it out (an NF4 weight:
  // dequantized). Any tensor of the files, the raw U8 parts of NF4 weights too; throws
  // naming a missing one.
  struct Bytes {
    size_t file = 0;
    size_t view = 0;
  };
  Bytes bytes(const std::string& name) const;
  // Drops an NF4 weight's dequantized copy (a device tensor adopting it keeps it alive
  // through its owner); a later get() dequantizes again. Nothing for other tensors.
  void release(const std::string& name) const;
  // Bytes of dequantized NF4 copies the checkpoint holds now (not counting copies that
  // device tensors adopted and keep alive).
  size_t held_bytes() const;
  // The bitsandbytes NF4 weights, by name, checked when the checkpoint was opened.
  std::vector<const Nf4Weight*> nf4_weights() const;
  // Reads a JSON file of the folder (config.json, preprocessor_config.json, ...).
  static nlohmann::json read_json(const std::string& path);

 private:
  std::string dir_;
  nlohmann::json config_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile*> where_;

  // Finds and checks every NF4 weight (their quant state tensors name them).
  void find_nf4_weights();
  const TensorView* find(const std::string& name) const;
  struct Nf4Entry {
    Nf4Weight weight;
    mutable TensorView view;   // data set while dequantized
  };
  std::map<std::string, Nf4Entry> nf4_;
  // Guards the entries' views. A release leaves references got before it dangling; a copy
  // of the view keeps the data through its owner (the weight loader takes copies).
  mutable std::mutex nf4_mutex_;
};

}  // namespace omni
