#include "plan/placement.h"

#include <map>

#include "util/error.h"

namespace omni::plan {

DecoderPlacement make_placement(const Plan& plan) {
  std::map<std::string, std::shared_ptr<kernels::Device>> made;
  auto device = [&](const kernels::DeviceId& id) {
    auto& d = made[id.str()];
    if (!d) {
      const auto cap = plan.max_memory.find(id.str());
      d = kernels::make_device(id, cap == plan.max_memory.end() ? 0 : size_t(cap->second), plan.cpu_weights);
    }
    return d;
  };
  DecoderPlacement p;
  if (plan.parallel == Parallel::Tensor) {
    std::vector<std::shared_ptr<kernels::Device>> ranks;
    for (const auto& d : plan.devices) ranks.push_back(device(d.id));
    p = DecoderPlacement::tensor_parallel(ranks, plan.n_layers);
  } else {
    p.layer_devices.resize(size_t(plan.n_layers));
    for (const auto& d : plan.devices) {
      if (d.first_layer >= 0) p.stage_starts.push_back(d.first_layer);   // one stage per entry
      for (int l = d.first_layer; l >= 0 && l <= d.last_layer; ++l) p.layer_devices[size_t(l)] = device(d.id);
      if (d.has("embed")) p.embed_device = device(d.id);
      if (d.has("lm_head")) p.head_device = device(d.id);
    }
    for (const auto& d : p.layer_devices)
      if (!d) throw Error("plan leaves a decoder layer without a device");
  }
  for (const auto& d : plan.devices)
    if (d.has("vision")) p.vision_device = device(d.id);
  for (const auto& d : plan.devices)
    if (d.has("vision_copy")) p.vision_copies.push_back(device(d.id));
  return p;
}

}  // namespace omni::plan
