#pragma once
// Shared by the plan tests: tiny model shapes and plan options with a fixed memory per
// device, so plans do not depend on the machine running the tests.
#include <string>
#include <vector>

#include "plan/plan.h"
#include "util/golden.h"

namespace omni::test {

inline plan::ModelShape shape_of(const std::string& name) { return plan::ModelShape::from_dir(data(name)); }

inline plan::PlanOptions options(const std::string& devices, plan::Parallel par = plan::Parallel::Pipeline) {
  plan::PlanOptions o;
  o.devices = kernels::DeviceId::parse_list(devices);
  o.parallel = par;
  o.workload.context = 256;
  o.device_memory = [](const kernels::DeviceId&) { return int64_t(1) << 30; };
  return o;
}

}  // namespace omni::test
