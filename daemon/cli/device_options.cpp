#include "cli/device_options.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <sstream>

#include "kernels/cpu/cpu_threads.h"
#include "plan/format.h"
#include "plan/placement.h"
#include "util/error.h"

namespace omni {

namespace {

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(item);
  return out;
}

kernels::DeviceId parse_device(const std::string& text, const std::string& what) {
  try {
    return kernels::DeviceId::parse(text);
  } catch (const std::exception& e) {
    throw UsageError(what + ": " + e.what());
  }
}

}  // namespace

void DeviceOptions::add_to(CLI::App* cmd, bool with_workload) {
  cmd->add_option("--devices", devices,
                  "Comma-separated devices, e.g. cpu:0,cpu:1 or cuda:0,cuda:1 (default: every CUDA device, else cpu:0)");
  cmd->add_option("--use-multi-gpu", use_multi_gpu, "false: run on the first device only")->capture_default_str();
  cmd->add_option("--parallel", parallel, "auto, single, pipeline or tensor")
      ->check(CLI::IsMember({"auto", "single", "pipeline", "tensor"}))
      ->capture_default_str();
  cmd->add_option("--max-memory", max_memory, "Per-device memory caps, e.g. cpu:0=64MiB,cuda:1=20GiB");
  cmd->add_option("--split", split, "Pipeline layer shares per listed device, e.g. 3,1");
  cmd->add_option("--vision-device", vision_device, "Device for the vision tower and resampler");
  cmd->add_option("--vision-devices", vision_devices,
                  "Devices with a copy of the vision tower, pictures split among them, e.g. cpu:0,cpu:1 "
                  "(default: every device of the plan with room)");
  cmd->add_option("--threads", threads, "CPU threads per cpu device (default: the cores shared among the cpu devices)")
      ->check(CLI::Range(0, 1024));
  cmd->add_option("--cpu-weights", cpu_weights,
                  "How cpu devices keep weight matrices: auto (as the checkpoint stores them), f32, bf16 or int8 (Q8_0 blocks)")
      ->capture_default_str();
  if (with_workload) {
    cmd->add_option("--context", context, "Tokens per sequence the KV cache is budgeted for")->check(CLI::Range(int64_t(1), int64_t(1) << 24));
    cmd->add_option("--concurrency", concurrency, "Sequences the KV cache is budgeted for")->check(CLI::Range(1, 1 << 16))
        ->capture_default_str();
    cmd->add_option("--kv-cache-tokens", kv_tokens, "KV cache size in tokens (default: context x concurrency)")
        ->check(CLI::Range(int64_t(1), int64_t(1) << 34));
  }
}

std::vector<kernels::DeviceId> DeviceOptions::device_list() const {
  std::vector<kernels::DeviceId> ids;
  if (devices.empty()) {
    // Discovery: every CUDA device; without CUDA, one cpu device.
    const int n = kernels::device_count(kernels::DeviceId::Kind::CUDA);
    for (int i = 0; i < n; ++i) ids.push_back({kernels::DeviceId::Kind::CUDA, i});
    if (ids.empty()) ids.push_back({kernels::DeviceId::Kind::CPU, 0});
  } else {
    try {
      ids = kernels::DeviceId::parse_list(devices);
    } catch (const std::exception& e) {
      throw UsageError(std::string("devices: ") + e.what());
    }
  }
  if (!use_multi_gpu) ids.resize(1);
  return ids;
}

plan::PlanOptions DeviceOptions::plan_options(const LlmConfig& cfg) const {
  plan::PlanOptions o;
  o.devices = device_list();
  o.parallel = plan::parse_parallel(parallel);
  if (!use_multi_gpu && o.parallel != plan::Parallel::Auto && o.parallel != plan::Parallel::Single)
    throw UsageError("use_multi_gpu = false runs on one device; parallel = " + parallel + " needs several");
  for (const auto& item : split_commas(max_memory)) {
    const auto eq = item.find('=');
    if (eq == std::string::npos) throw UsageError("max_memory: '" + item + "' is not DEVICE=SIZE (e.g. cpu:0=64MiB)");
    const std::string dev = parse_device(item.substr(0, eq), "max_memory").str();
    if (o.max_memory.count(dev)) throw UsageError("max_memory: " + dev + " is given twice");
    o.max_memory[dev] = plan::parse_bytes(item.substr(eq + 1), "max_memory for " + dev);
  }
  if (!split.empty())
    for (const auto& w : split_commas(split)) {
      size_t used = 0;
      double v = -1;
      try {
        v = std::stod(w, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != w.size()) throw UsageError("split: '" + w + "' is not a number (e.g. --split 3,1)");
      o.split.push_back(v);
    }
  if (!vision_device.empty()) o.vision_device = parse_device(vision_device, "vision_device");
  for (const auto& d : split_commas(vision_devices)) o.vision_devices.push_back(parse_device(d, "vision_devices"));
  try {
    o.cpu_weights = kernels::parse_cpu_weights(cpu_weights);
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("cpu_weights: ") + e.what());
  }
  o.workload.context = context > 0 ? context : std::min<int64_t>(cfg.max_positions > 0 ? cfg.max_positions : 4096, 4096);
  o.workload.concurrency = concurrency;
  o.workload.kv_tokens = kv_tokens;
  return o;
}

plan::Plan DeviceOptions::make_plan(const plan::ModelShape& model) const {
  return plan::make_plan(model, plan_options(model.llm));
}

CausalLm::PlaceFn DeviceOptions::placer(const std::string& model_dir) const {
  DeviceOptions self = *this;
  return [self, model_dir](const LlmConfig& cfg) {
    self.apply_threads();
    plan::ModelShape shape;
    if (!model_dir.empty()) shape = plan::ModelShape::from_dir(model_dir);
    shape.llm = cfg;   // the loader's view of the decoder wins
    plan::Plan p = self.make_plan(shape);
    spdlog::info("placement:\n{}", p.table());
    return plan::make_placement(p);
  };
}

void DeviceOptions::apply_threads() const {
  int cpu_devices = 0;
  for (const auto& d : device_list()) cpu_devices += d.kind == kernels::DeviceId::Kind::CPU;
  const int n = threads > 0 ? threads : kernels::default_cpu_threads(cpu_devices);
  kernels::set_cpu_threads(n);
  if (cpu_devices > 0) spdlog::info("cpu: {} thread{} per cpu device", n, n == 1 ? "" : "s");
}

std::string DeviceOptions::placement_json(const Decoder& dec) {
  nlohmann::json j;
  const auto& p = dec.placement();
  j["parallel"] = p.tp_size() > 1 ? "tensor" : "pipeline";
  j["embed"] = p.embed_device->id().str();
  j["head"] = p.head_device->id().str();
  if (p.vision_device) j["vision"] = p.vision_device->id().str();
  if (!p.vision_copies.empty()) {
    j["vision_copies"] = nlohmann::json::array();
    for (const auto& d : p.vision_copies) j["vision_copies"].push_back(d->id().str());
  }
  if (p.tp_size() > 1) {
    j["ranks"] = nlohmann::json::array();
    for (const auto& d : p.tp_devices) j["ranks"].push_back(d->id().str());
  }
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
