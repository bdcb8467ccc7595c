// Plan::json and Plan::table: the placement for programs and for people.
#include <algorithm>
#include <nlohmann/json.hpp>
#include <sstream>

#include "model/kv_pool.h"
#include "plan/format.h"
#include "plan/plan.h"

namespace omni::plan {

bool Plan::has_cpu() const {
  return std::any_of(devices.begin(), devices.end(), [](const DevicePlan& d) { return d.id.kind == kernels::DeviceId::Kind::CPU; });
}

std::string Plan::json() const {
  nlohmann::json j;
  j["parallel"] = to_string(parallel);
  j["kv_cache"] = {{"block_tokens", kBlockTokens}, {"blocks", kv_blocks}, {"tokens", kv_blocks * kBlockTokens}};
  if (has_cpu()) j["cpu_weights"] = {{"setting", kernels::to_string(cpu_weights)}, {"dtype", kernels::dtype_name(cpu_matrix_dtype)}};
  j["devices"] = nlohmann::json::array();
  for (size_t i = 0; i < devices.size(); ++i) {
    const auto& d = devices[i];
    nlohmann::json e;
    e["device"] = d.id.str();
    e["layers"] = d.first_layer < 0 ? nlohmann::json::array() : nlohmann::json::array({d.first_layer, d.last_layer});
    e["components"] = d.components;
    e["weight_bytes"] = d.weight_bytes;
    e["kv_bytes"] = d.kv_bytes;
    e["workspace_bytes"] = d.workspace_bytes;
    e["available_bytes"] = d.available_bytes;
    e["free_after_load_bytes"] = free_after_load(i);
    e["relative_cost"] = d.cost;
    if (d.vision_bytes) e["vision_bytes"] = d.vision_bytes;
    j["devices"].push_back(e);
  }
  // The vision copies (model/vision_encoder.h splits pictures among them), primary first.
  const auto vision = vision_devices();
  if (!vision.empty()) {
    j["vision_devices"] = nlohmann::json::array();
    for (const auto& id : vision) j["vision_devices"].push_back(id.str());
    j["vision_left_out"] = nlohmann::json::array();
    for (const auto& v : vision_left_out)
      j["vision_left_out"].push_back({{"device", v.id.str()}, {"needed_bytes", v.needed_bytes}, {"free_bytes", v.free_bytes}});
  }
  if (quantization) j["quantization"] = quantization->json();
  return j.dump(1);
}

std::string Plan::table() const {
  std::ostringstream s;
  s << "parallel: " << to_string(parallel) << "\n";
  s << "kv cache: " << kv_blocks << " blocks of " << kBlockTokens << " tokens (" << kv_blocks * kBlockTokens
    << " tokens, shared by all sequences)\n";
  if (has_cpu())
    s << "cpu weights: " << kernels::dtype_name(cpu_matrix_dtype) << " matrices (cpu_weights = " << kernels::to_string(cpu_weights)
      << "), norms, KV cache and activations f32\n";
  char line[512];
  std::snprintf(line, sizeof line, "%-8s %-12s %-12s %-12s %-12s %-12s %-12s %s\n", "device", "layers", "weights", "kv cache",
                "workspace", "available", "free after", "components");
  s << line;
  for (size_t i = 0; i < devices.size(); ++i) {
    const auto& d = devices[i];
    std::string layers = d.first_layer < 0 ? "-" : std::to_string(d.first_layer) + "-" + std::to_string(d.last_layer);
    if (parallel == Parallel::Tensor) layers += " (1/" + std::to_string(devices.size()) + ")";
    std::string comps;
    for (const auto& c : d.components) comps += (comps.empty() ? "" : ",") + c;
    std::snprintf(line, sizeof line, "%-8s %-12s %-12s %-12s %-12s %-12s %-12s %s\n", d.id.str().c_str(), layers.c_str(),
                  format_bytes(d.weight_bytes).c_str(), format_bytes(d.kv_bytes).c_str(),
                  format_bytes(d.workspace_bytes).c_str(), format_bytes(d.available_bytes).c_str(),
                  format_bytes(free_after_load(i)).c_str(), comps.empty() ? "-" : comps.c_str());
    s << line;
  }
  const auto vision = vision_devices();
  for (size_t k = 0; k < vision.size(); ++k) {
    int64_t bytes = 0;
    for (const auto& d : devices)
      if (d.id == vision[k] && d.vision_bytes) bytes = d.vision_bytes;
    s << (k ? ", " : "vision copies (pictures and frames split among them): ") << vision[k].str() << " ("
      << (k ? "copy, " : "primary, ") << format_bytes(bytes) << ")" << (k + 1 == vision.size() ? "\n" : "");
  }
  for (const auto& v : vision_left_out)
    s << "no vision copy on " << v.id.str() << ": needs " << format_bytes(v.needed_bytes) << ", "
      << format_bytes(std::max<int64_t>(0, v.free_bytes)) << " free\n";
  if (quantization) s << quantization->line();
  return s.str();
}

}  // namespace omni::plan
