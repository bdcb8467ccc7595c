#pragma once
// The device flags shared by commands that load a model (--devices), and the
// placement they imply.
#include <CLI/CLI.hpp>
#include <string>

#include "model/causal_lm.h"

namespace omni {

struct DeviceOptions {
  std::string devices = "cpu:0";
  void add_to(CLI::App* cmd);
  // Contiguous, even layer ranges over the listed devices: embeddings with the first,
  // final norm and lm_head with the last. The same device may be listed twice.
  CausalLm::PlaceFn placer() const;
  // Where each part of a loaded decoder sits, as JSON (for status).
  static std::string placement_json(const Decoder& dec);
};

}  // namespace omni
