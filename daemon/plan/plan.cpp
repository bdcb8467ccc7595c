#include "plan/plan.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "plan/format.h"
#include "util/error.h"

namespace omni::plan {

using kernels::DeviceId;

std::string to_string(Parallel p) {
  switch (p) {
    case Parallel::Auto: return "auto";
    case Parallel::Single: return "single";
    case Parallel::Pipeline: return "pipeline";
    case Parallel::Tensor: return "tensor";
  }
  return "?";
}

Parallel parse_parallel(const std::string& s) {
  if (s == "auto") return Parallel::Auto;
  if (s == "single") return Parallel::Single;
  if (s == "pipeline") return Parallel::Pipeline;
  if (s == "tensor") return Parallel::Tensor;
  throw Error("parallel: '" + s + "' is not one of auto, single, pipeline, tensor");
}

bool DevicePlan::has(const std::string& c) const {
  return std::find(components.begin(), components.end(), c) != components.end();
}

std::vector<DeviceId> Plan::vision_devices() const {
  std::vector<DeviceId> out;
  for (const auto& d : devices)
    if (d.has("vision")) out.insert(out.begin(), d.id);
    else if (d.has("vision_copy")) out.push_back(d.id);
  return out;
}

int64_t device_reserve(const DeviceId& id, bool capped, int64_t offered) {
  // CUDA: the context, cuBLAS workspaces and fragmentation live outside our allocator.
  if (id.kind == DeviceId::Kind::CUDA) return 512ll << 20;
  // A capped cpu device is a budget we enforce ourselves; uncapped ones leave the OS room.
  return capped ? 0 : std::min<int64_t>(offered / 10, 2ll << 30);
}

int64_t Plan::free_after_load(size_t i) const {
  // Stages on the same device share its budget.
  int64_t used = 0;
  for (const auto& d : devices)
    if (d.id == devices[i].id) used += d.needed_bytes();
  return devices[i].available_bytes - used;
}

namespace {

// The layers, components and bytes of every listed device for one layout.
struct Layout {
  std::vector<int> counts;   // layers per entry (pipeline); ignored for tensor
  int vision_entry = -1;
};

class Planner {
 public:
  Planner(const ModelShape& m, const PlanOptions& o) : m_(m), o_(o), cm_(m, o.workload) {}

  Plan run();

 private:
  Plan layout();
  // Copies of the vision tower and resampler on the other devices of vision_devices (or of
  // the plan) with room for them, after the decoder and the primary copy are placed.
  void add_vision_copies(Plan& p) const;
  void validate();
  void budgets(const std::vector<DeviceId>& ids);
  Plan pipeline_plan(const std::vector<DeviceId>& ids, const Layout& lay) const;
  Plan tensor_plan(const std::vector<DeviceId>& ids, int vision_entry) const;
  // The vision tower and resampler on `d`: components, weights, workspace, cost.
  void add_vision(DevicePlan& d, Params& weights, int64_t& ws) const;
  // Element counts to bytes in d's dtype, and what d offers.
  void set_bytes(DevicePlan& d, const Params& weights, int64_t kv, int64_t ws) const;
  int64_t bytes(const Params& p, const DeviceId& id) const { return param_bytes(p, id, o_.cpu_weights, m_.released); }
  Plan pipeline(const std::vector<DeviceId>& ids);
  Plan tensor(const std::vector<DeviceId>& ids);
  std::vector<int> balanced_counts(const std::vector<DeviceId>& ids, int vision_entry, bool check_memory) const;
  std::vector<int> split_counts(size_t n_entries) const;
  int entry_of(const std::vector<DeviceId>& ids, const DeviceId& d) const;
  std::vector<int> vision_candidates(const std::vector<DeviceId>& ids) const;
  bool fits(const Plan& p) const;
  [[noreturn]] void refuse(const Plan& p) const;

  const ModelShape& m_;
  const PlanOptions& o_;
  CostModel cm_;
  std::map<std::string, int64_t> avail_;   // per device id, after the reserve
};

int64_t default_memory(const DeviceId& id) {
  if (id.kind == DeviceId::Kind::CPU) return int64_t(kernels::host_available_memory());
  return int64_t(kernels::make_device(id)->free_memory());
}

void Planner::validate() {
  if (o_.devices.empty()) throw Error("plan: no devices");
  const int E = int(o_.devices.size());
  for (const auto& d : o_.devices)
    if (d.kind == DeviceId::Kind::CUDA && d.index >= kernels::device_count(d.kind))
      throw Error("device " + d.str() + " does not exist: this machine has " +
                  std::to_string(kernels::device_count(d.kind)) + " CUDA devices (" +
                  kernels::backend_detail(d.kind) + ")");
  for (const auto& [name, cap] : o_.max_memory) {
    if (std::none_of(o_.devices.begin(), o_.devices.end(), [&](const DeviceId& d) { return d.str() == name; }))
      throw Error("max_memory names " + name + ", which is not in the device list");
    if (cap <= 0) throw Error("max_memory for " + name + " must be positive");
  }
  if (o_.vision_device && entry_of(o_.devices, *o_.vision_device) < 0)
    throw Error("vision device " + o_.vision_device->str() + " is not in the device list");
  for (size_t i = 0; i < o_.vision_devices.size(); ++i) {
    const DeviceId& v = o_.vision_devices[i];
    if (entry_of(o_.devices, v) < 0) throw UsageError("vision_devices names " + v.str() + ", which is not in the device list");
    if (entry_of(o_.vision_devices, v) != int(i)) throw UsageError("vision_devices lists " + v.str() + " twice");
  }
  if (o_.vision_device && !o_.vision_devices.empty() && entry_of(o_.vision_devices, *o_.vision_device) < 0)
    throw UsageError("vision device " + o_.vision_device->str() + " is not one of vision_devices");
  if (!o_.split.empty()) {
    if (o_.parallel == Parallel::Tensor)
      throw Error("split applies to pipeline layers; tensor parallel splits every layer evenly (drop split)");
    if (int(o_.split.size()) != E)
      throw Error("split has " + std::to_string(o_.split.size()) + " weights for " + std::to_string(E) + " devices");
    double sum = 0;
    for (double w : o_.split) {
      if (!(w >= 0) || !std::isfinite(w)) throw Error("split weights must be finite and >= 0");
      sum += w;
    }
    if (sum <= 0) throw Error("split weights are all zero");
  }
  if (o_.workload.context < 1 || o_.workload.concurrency < 1) throw Error("context and concurrency must be >= 1");
}

void Planner::budgets(const std::vector<DeviceId>& ids) {
  // Uncapped cpu devices share the host's memory evenly.
  std::set<std::string> uncapped_cpus;
  for (const auto& d : ids)
    if (d.kind == DeviceId::Kind::CPU && !o_.max_memory.count(d.str())) uncapped_cpus.insert(d.str());
  for (const auto& d : ids) {
    const std::string k = d.str();
    if (avail_.count(k)) continue;
    const auto cap = o_.max_memory.find(k);
    const bool capped = cap != o_.max_memory.end();
    int64_t offered = capped ? cap->second : (o_.device_memory ? o_.device_memory(d) : default_memory(d));
    if (!capped && d.kind == DeviceId::Kind::CPU) offered /= int64_t(std::max<size_t>(1, uncapped_cpus.size()));
    avail_[k] = std::max<int64_t>(0, offered - device_reserve(d, capped, offered));
  }
}

int Planner::entry_of(const std::vector<DeviceId>& ids, const DeviceId& d) const {
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] == d) return int(i);
  return -1;
}

std::vector<int> Planner::vision_candidates(const std::vector<DeviceId>& ids) const {
  if (!m_.vision) return {-1};
  if (o_.vision_device) return {entry_of(ids, *o_.vision_device)};
  std::vector<int> out;   // the first entry of each device (of vision_devices, when given)
  for (size_t i = 0; i < ids.size(); ++i)
    if (entry_of(ids, ids[i]) == int(i) && (o_.vision_devices.empty() || entry_of(o_.vision_devices, ids[i]) >= 0))
      out.push_back(int(i));
  return out;
}

Plan Planner::pipeline_plan(const std::vector<DeviceId>& ids, const Layout& lay) const {
  Plan p;
  p.parallel = ids.size() == 1 ? Parallel::Single : Parallel::Pipeline;
  p.n_layers = m_.llm.n_layers;
  int first = -1, last = -1;
  for (size_t e = 0; e < lay.counts.size(); ++e)
    if (lay.counts[e] > 0) {
      if (first < 0) first = int(e);
      last = int(e);
    }
  int layer = 0;
  for (size_t e = 0; e < ids.size(); ++e) {
    DevicePlan d;
    d.id = ids[e];
    const int n = lay.counts[e];
    Params weights;
    int64_t kv = 0, ws = 0;
    if (n > 0) {
      d.first_layer = layer;
      d.last_layer = layer + n - 1;
      layer += n;
      weights += n * cm_.layer_params();
      kv += n * cm_.kv_elems_per_layer();
      ws = std::max(ws, cm_.layer_workspace_elems());
      d.cost += n * cm_.layer_cost();
    }
    if (int(e) == first) {
      d.components.push_back("embed");
      weights += cm_.embed_params();
    }
    if (int(e) == last) {
      d.components.push_back("final_norm");
      d.components.push_back("lm_head");
      // Tied embeddings share the table when head and embed sit together.
      const bool shared = m_.llm.tie_embeddings && ids[size_t(first)] == d.id;
      weights += cm_.final_norm_params() + (shared ? Params{} : cm_.lm_head_params());
      ws += cm_.head_workspace_elems();
      d.cost += cm_.lm_head_cost();
    }
    if (int(e) == lay.vision_entry) add_vision(d, weights, ws);
    set_bytes(d, weights, kv, ws);
    p.devices.push_back(std::move(d));
  }
  p.max_memory = o_.max_memory;
  p.cpu_weights = o_.cpu_weights;
  p.cpu_matrix_dtype = kernels::cpu_weight_dtype(o_.cpu_weights, m_.released);
  p.kv_blocks = o_.workload.kv_blocks();
  return p;
}

void Planner::add_vision(DevicePlan& d, Params& weights, int64_t& ws) const {
  d.components.push_back("vision");
  d.components.push_back("resampler");
  d.vision_bytes = bytes(cm_.vision_params() + cm_.resampler_params(), d.id) +
                   std::max<int64_t>(0, cm_.vision_workspace_elems() - ws) * elem_bytes(d.id);
  weights += cm_.vision_params() + cm_.resampler_params();
  ws = std::max(ws, cm_.vision_workspace_elems());
  d.cost += cm_.vision_cost();
}

void Planner::set_bytes(DevicePlan& d, const Params& weights, int64_t kv, int64_t ws) const {
  const int64_t eb = elem_bytes(d.id);
  d.weight_bytes = bytes(weights, d.id);
  d.kv_bytes = kv * eb;
  d.workspace_bytes = ws * eb;
  d.available_bytes = avail_.at(d.id.str());
}

Plan Planner::tensor_plan(const std::vector<DeviceId>& ids, int vision_entry) const {
  const int tp = int(ids.size());
  Plan p;
  p.parallel = Parallel::Tensor;
  p.n_layers = m_.llm.n_layers;
  const int N = m_.llm.n_layers;
  for (int r = 0; r < tp; ++r) {
    DevicePlan d;
    d.id = ids[size_t(r)];
    d.first_layer = 0;
    d.last_layer = N - 1;
    Params weights = N * cm_.layer_params(tp);
    int64_t ws = cm_.layer_workspace_elems(tp);
    d.cost = N * cm_.layer_cost(tp);
    if (r == 0) {   // embeddings, final norm and lm_head stay whole on rank 0
      d.components = {"embed", "final_norm", "lm_head"};
      weights += cm_.embed_params() + cm_.final_norm_params() + (m_.llm.tie_embeddings ? Params{} : cm_.lm_head_params());
      ws += cm_.head_workspace_elems();
      d.cost += cm_.lm_head_cost();
    }
    if (r == vision_entry) add_vision(d, weights, ws);
    set_bytes(d, weights, N * cm_.kv_elems_per_layer(tp), ws);
    p.devices.push_back(std::move(d));
  }
  p.max_memory = o_.max_memory;
  p.cpu_weights = o_.cpu_weights;
  p.cpu_matrix_dtype = kernels::cpu_weight_dtype(o_.cpu_weights, m_.released);
  p.kv_blocks = o_.workload.kv_blocks();
  return p;
}

bool Planner::fits(const Plan& p) const {
  for (size_t i = 0; i < p.devices.size(); ++i)
    if (p.free_after_load(i) < 0) return false;
  return true;
}

void Planner::refuse(const Plan& p) const {
  std::ostringstream s;
  s << "the model does not fit (" << to_string(p.parallel) << " over";
  for (const auto& d : p.devices) s << " " << d.id.str();
  s << "):";
  std::set<std::string> seen;
  for (size_t i = 0; i < p.devices.size(); ++i) {
    const auto& d = p.devices[i];
    if (!seen.insert(d.id.str()).second) continue;
    int64_t w = 0, kv = 0, ws = 0;
    for (const auto& e : p.devices)
      if (e.id == d.id) w += e.weight_bytes, kv += e.kv_bytes, ws += e.workspace_bytes;
    s << "\n  " << d.id.str() << ": needs " << format_bytes(w + kv + ws) << " (weights " << format_bytes(w) << ", KV cache "
      << format_bytes(kv) << ", workspace " << format_bytes(ws) << "), available " << format_bytes(d.available_bytes)
      << (w + kv + ws > d.available_bytes ? "  <- short by " + format_bytes(w + kv + ws - d.available_bytes) : "");
  }
  s << "\n(more devices, larger max_memory caps, a smaller KV cache (--kv-cache-tokens), a shorter context or lower "
       "concurrency would help)";
  throw Error(s.str());
}

// Layer counts from explicit weights, by cumulative rounding (as llama.cpp's --tensor-split).
std::vector<int> Planner::split_counts(size_t n_entries) const {
  double total = 0;
  for (double w : o_.split) total += w;
  std::vector<int> counts(n_entries, 0);
  double cum = 0;
  int prev = 0;
  for (size_t e = 0; e < n_entries; ++e) {
    cum += o_.split[e];
    const int bound = int(std::lround(m_.llm.n_layers * cum / total));
    counts[e] = bound - prev;
    prev = bound;
  }
  return counts;
}

// Contiguous ranges, at least one layer per entry, minimising the slowest stage's cost
// (layers, lm_head on the last, vision where placed); with check_memory, only layouts
// whose every stage fits its share of the device's budget.
std::vector<int> Planner::balanced_counts(const std::vector<DeviceId>& ids, int vision_entry, bool check_memory) const {
  const int E = int(ids.size()), N = m_.llm.n_layers;
  std::map<std::string, int> uses;
  for (const auto& d : ids) uses[d.str()]++;
  auto stage = [&](int e, int n) {   // cost and fit of entry e holding n layers
    Layout lay;
    lay.counts.assign(size_t(E), 1);   // first/last entries are fixed since each gets >= 1 layer
    lay.counts[size_t(e)] = n;
    lay.vision_entry = vision_entry;
    const DevicePlan d = pipeline_plan(ids, lay).devices[size_t(e)];
    const bool ok = !check_memory || d.needed_bytes() <= d.available_bytes / uses[d.id.str()];
    return std::make_pair(d.cost, ok);
  };
  const double inf = std::numeric_limits<double>::infinity();
  // best[e][j]: the least bottleneck with entries 0..e holding layers [0, j).
  std::vector<std::vector<double>> best(size_t(E), std::vector<double>(size_t(N + 1), inf));
  std::vector<std::vector<int>> from(size_t(E), std::vector<int>(size_t(N + 1), -1));
  for (int j = 1; j <= N; ++j) {
    auto [c, ok] = stage(0, j);
    if (ok) best[0][size_t(j)] = c;
  }
  for (int e = 1; e < E; ++e)
    for (int j = e + 1; j <= N; ++j)
      for (int i = e; i < j; ++i) {
        if (best[size_t(e - 1)][size_t(i)] == inf) continue;
        auto [c, ok] = stage(e, j - i);
        if (!ok) continue;
        const double b = std::max(best[size_t(e - 1)][size_t(i)], c);
        if (b < best[size_t(e)][size_t(j)]) best[size_t(e)][size_t(j)] = b, from[size_t(e)][size_t(j)] = i;
      }
  if (best[size_t(E - 1)][size_t(N)] == inf) return {};
  std::vector<int> counts(static_cast<size_t>(E));
  for (int e = E - 1, j = N; e >= 0; --e) {
    const int i = e ? from[size_t(e)][size_t(j)] : 0;
    counts[size_t(e)] = j - i;
    j = i;
  }
  return counts;
}

Plan Planner::pipeline(const std::vector<DeviceId>& ids) {
  const int E = int(ids.size());
  if (!o_.split.empty() && E > 1) {
    Layout lay{split_counts(ids.size()), -1};
    // The vision tower goes where the most headroom remains after the split, unless pinned.
    std::optional<Plan> best;
    int64_t best_room = 0;
    for (int v : vision_candidates(ids)) {
      lay.vision_entry = v;
      Plan p = pipeline_plan(ids, lay);
      const int64_t room = v < 0 ? 0 : p.free_after_load(size_t(v));
      if (!best || (fits(p) && (!fits(*best) || room > best_room))) best = p, best_room = room;
    }
    if (!fits(*best)) refuse(*best);
    return *best;
  }
  if (m_.llm.n_layers < E)
    throw Error("pipeline over " + std::to_string(E) + " devices needs at least one decoder layer each; the model has " +
                std::to_string(m_.llm.n_layers));
  std::optional<Plan> best;
  double best_cost = 0;
  int64_t best_room = 0;
  for (int v : vision_candidates(ids)) {
    std::vector<int> counts = balanced_counts(ids, v, true);
    if (counts.empty()) continue;
    Plan p = pipeline_plan(ids, {counts, v});
    if (!fits(p)) continue;
    double cost = 0;
    for (const auto& d : p.devices) cost = std::max(cost, d.cost);
    const int64_t room = v < 0 ? 0 : p.free_after_load(size_t(v));
    if (!best || cost < best_cost * (1 - 1e-9) || (cost <= best_cost * (1 + 1e-9) && room > best_room))
      best = p, best_cost = cost, best_room = room;
  }
  if (best) return *best;
  // Nothing fits: report the balanced layout's numbers.
  const int v = vision_candidates(ids).back();
  refuse(pipeline_plan(ids, {balanced_counts(ids, v, false), v}));
}

Plan Planner::tensor(const std::vector<DeviceId>& ids) {
  const int tp = int(ids.size());
  std::set<std::string> distinct;
  for (const auto& d : ids)
    if (!distinct.insert(d.str()).second)
      throw Error("tensor parallel needs distinct devices; " + d.str() + " is listed twice");
  m_.llm.check_tensor_split(tp);
  std::optional<Plan> best;
  int64_t best_room = 0;
  for (int v : vision_candidates(ids)) {
    Plan p = tensor_plan(ids, v);
    const int64_t room = v < 0 ? 0 : p.free_after_load(size_t(v));
    if (!best || (fits(p) && (!fits(*best) || room > best_room))) best = p, best_room = room;
  }
  if (!fits(*best)) refuse(*best);
  return *best;
}

Plan Planner::run() {
  validate();
  budgets(o_.devices);
  Plan p = layout();
  add_vision_copies(p);
  return p;
}

void Planner::add_vision_copies(Plan& p) const {
  if (!m_.vision) return;
  const std::vector<DeviceId> have = p.vision_devices();   // the primary
  if (have.empty()) return;
  std::vector<DeviceId> want = o_.vision_devices;
  const bool chosen = !want.empty();
  if (!chosen)
    for (const auto& d : p.devices)
      if (entry_of(want, d.id) < 0) want.push_back(d.id);
  for (const DeviceId& id : want) {
    if (id == have.front()) continue;
    // A chosen device the decoder does not use (auto placed it on one device) gets an entry
    // of its own, without layers.
    int e = -1;
    for (size_t i = 0; i < p.devices.size() && e < 0; ++i)
      if (p.devices[i].id == id) e = int(i);
    if (e < 0) {
      DevicePlan d;
      d.id = id;
      set_bytes(d, {}, 0, 0);
      p.devices.push_back(std::move(d));
      e = int(p.devices.size()) - 1;
    }
    DevicePlan& d = p.devices[size_t(e)];
    // Weights, and the per-piece workspace where it exceeds what the device's other parts
    // keep: a copy takes the device's turn lock per piece, as the primary does, so the two
    // scratch spaces are not live together.
    const int64_t eb = elem_bytes(id);
    const int64_t weights = bytes(cm_.vision_params() + cm_.resampler_params(), id);
    const int64_t ws = std::max<int64_t>(0, cm_.vision_workspace_elems() * eb - d.workspace_bytes);
    const int64_t free = p.free_after_load(size_t(e));
    if (weights + ws > free) {
      if (chosen)
        throw UsageError("vision_devices: " + id.str() + " has no room for a copy of the vision tower and resampler: it needs " +
                         format_bytes(weights + ws) + " (weights " + format_bytes(weights) + ", workspace " +
                         format_bytes(ws) + "), " + format_bytes(std::max<int64_t>(0, free)) +
                         " is free after its other parts (leave it out of vision_devices, or raise its max_memory)");
      p.vision_left_out.push_back({id, weights + ws, free});
      continue;
    }
    d.components.push_back("vision_copy");
    d.components.push_back("resampler_copy");
    d.weight_bytes += weights;
    d.workspace_bytes += ws;
    d.vision_bytes = weights + ws;
  }
}

Plan Planner::layout() {
  const std::vector<DeviceId>& ids = o_.devices;
  switch (o_.parallel) {
    case Parallel::Single:
      if (ids.size() > 1) throw Error("parallel = single takes one device, " + std::to_string(ids.size()) + " listed");
      return pipeline(ids);
    case Parallel::Pipeline: return pipeline(ids);
    case Parallel::Tensor:
      if (ids.size() == 1) return pipeline(ids);
      return tensor(ids);
    case Parallel::Auto: break;
  }
  // auto: one device when the model fits there (and nothing is pinned elsewhere), else pipeline.
  const bool pinned_elsewhere =
      (o_.vision_device && !(*o_.vision_device == ids.front())) ||
      (m_.vision && !o_.vision_devices.empty() && entry_of(o_.vision_devices, ids.front()) < 0);
  if (ids.size() > 1 && o_.split.empty() && !pinned_elsewhere) {
    try {
      return pipeline({ids.front()});
    } catch (const Error&) {
    }
  }
  return pipeline(ids);
}

}  // namespace

Plan make_plan(const ModelShape& model, const PlanOptions& opt) { return Planner(model, opt).run(); }

}  // namespace omni::plan
