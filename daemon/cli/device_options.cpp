#include "cli/device_options.h"

#include <map>
#include <nlohmann/json.hpp>

#include "util/error.h"

namespace omni {

void DeviceOptions::add_to(CLI::App* cmd) {
  cmd->add_option("--devices", devices, "Comma-separated devices, e.g. cpu:0,cpu:1 or cuda:0,cuda:1");
}

CausalLm::PlaceFn DeviceOptions::placer() const {
  std::vector<kernels::DeviceId> ids;
  try {
    ids = kernels::DeviceId::parse_list(devices);
  } catch (const std::exception& e) {
    throw Error(std::string("--devices: ") + e.what());
  }
  return [ids](const LlmConfig& cfg) {
    std::map<std::string, std::shared_ptr<kernels::Device>> made;   // one object per named device
    std::vector<std::shared_ptr<kernels::Device>> devs;
    for (const auto& id : ids) {
      auto& d = made[id.str()];
      if (!d) d = kernels::make_device(id);
      devs.push_back(d);
    }
    DecoderPlacement p;
    p.embed_device = devs.front();
    p.head_device = devs.back();
    const size_t n = devs.size();
    for (int l = 0; l < cfg.n_layers; ++l) p.layer_devices.push_back(devs[size_t(l) * n / size_t(cfg.n_layers)]);
    return p;
  };
}

std::string DeviceOptions::placement_json(const Decoder& dec) {
  nlohmann::json j;
  const auto& p = dec.placement();
  j["embed"] = p.embed_device->id().str();
  j["head"] = p.head_device->id().str();
  nlohmann::json stages = nlohmann::json::array();
  for (size_t l = 0; l < p.layer_devices.size(); ++l) {
    const std::string d = p.layer_devices[l]->id().str();
    if (stages.empty() || stages.back()["device"] != d || l == 0)
      stages.push_back({{"device", d}, {"layers", {l, l}}});
    else
      stages.back()["layers"][1] = l;
  }
  j["stages"] = stages;
  return j.dump();
}

}  // namespace omni
