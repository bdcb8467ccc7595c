// omnid plan: prints where the model would go on the given devices (a table, or JSON
// with --json) from its config.json; refuses, with the numbers, what does not fit. Where
// weights sit beside it, their headers say which are NF4 (plan/quantization.h); no
// weight is read.
#include <cstdio>

#include "cli/commands.h"
#include "cli/device_options.h"
#include "plan/plan.h"
#include "util/error.h"

namespace omni {

namespace {

struct PlanArgs {
  std::string model;
  bool json = false;
  DeviceOptions devices;
};

void run_plan(const PlanArgs& a) {
  // A model that does not fit, or flags the planner refuses, are usage errors (exit 2).
  plan::Plan p;
  as_usage_error("", [&] { p = a.devices.make_plan(plan::ModelShape::from_dir(a.model)); });
  p.quantization = plan::QuantizationSummary::from_dir(a.model);
  const std::string out = a.json ? p.json() + "\n" : p.table();
  std::fwrite(out.data(), 1, out.size(), stdout);
}

}  // namespace

void add_plan_command(CLI::App& app) {
  auto a = std::make_shared<PlanArgs>();
  CLI::App* cmd = app.add_subcommand("plan", "Show how the model would be placed on the devices (reads config.json and the weights' headers only)");
  cmd->add_option("--model", a->model, "Checkpoint folder (Hugging Face layout)")->required();
  cmd->add_flag("--json", a->json, "Print the plan as JSON");
  a->devices.add_to(cmd);
  cmd->callback([a] { run_plan(*a); });
}

}  // namespace omni
