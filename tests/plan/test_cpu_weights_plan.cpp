// The planner counts the bytes a cpu device really keeps (kernels/cpu_weights.h): the real
// MiniCPM-V 2.6 shapes (tests/data/plan-shapes/minicpmv26, its config.json alone) do not
// fit a 24 GiB machine as float32 copies and do with bf16 matrices, KV cache included.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "cli/run_command.h"
#include "plan/cost.h"
#include "plan_fixtures.h"

using namespace omni;
using kernels::CpuWeights;
using kernels::DType;

namespace {

constexpr int64_t kGiB = int64_t(1) << 30;

plan::Plan plan_on_24gib(CpuWeights w) {
  plan::PlanOptions o;
  o.devices = kernels::DeviceId::parse_list("cpu:0");
  o.workload.context = 4096;   // omnid's default budget: min(max_position_embeddings, 4096)
  o.cpu_weights = w;
  o.device_memory = [](const kernels::DeviceId&) { return 24 * kGiB; };   // uncapped: the OS reserve comes off
  return plan::make_plan(test::shape_of("plan-shapes/minicpmv26"), o);
}

}  // namespace

TEST_CASE("matrices count at their kept dtype, norms and biases at float32", "[plan][cpu_weights]") {
  const kernels::DeviceId cpu{kernels::DeviceId::Kind::CPU, 0}, gpu{kernels::DeviceId::Kind::CUDA, 0};
  const plan::Params p{64 * 1000, 100};
  CHECK(plan::param_bytes(p, cpu, CpuWeights::F32, DType::BF16) == 64000 * 4 + 400);
  CHECK(plan::param_bytes(p, cpu, CpuWeights::AsReleased, DType::BF16) == 64000 * 2 + 400);
  CHECK(plan::param_bytes(p, cpu, CpuWeights::AsReleased, DType::F32) == 64000 * 4 + 400);
  CHECK(plan::param_bytes(p, cpu, CpuWeights::BF16, DType::F32) == 64000 * 2 + 400);
  CHECK(plan::param_bytes(p, cpu, CpuWeights::Int8, DType::BF16) == 2000 * 34 + 400);
  CHECK(plan::param_bytes(p, gpu, CpuWeights::F32, DType::BF16) == 64000 * 2 + 200);   // cuda: bf16, whatever cpu_weights
}

TEST_CASE("MiniCPM-V 2.6 fits a 24 GiB machine with bf16 weights and its KV cache, not with float32", "[plan][cpu_weights]") {
  CHECK_THROWS_WITH(plan_on_24gib(CpuWeights::F32), Catch::Contains("does not fit") && Catch::Contains("cpu:0: needs 31.5 GiB"));
  for (CpuWeights w : {CpuWeights::AsReleased, CpuWeights::BF16, CpuWeights::Int8}) {
    const plan::Plan p = plan_on_24gib(w);
    INFO(kernels::to_string(w) << "\n" << p.table());
    REQUIRE(p.devices.size() == 1);
    const plan::DevicePlan& d = p.devices[0];
    CHECK(d.has("vision"));
    CHECK(d.kv_bytes == int64_t(4096) * 28 * 2 * 512 * 4);   // 4096 tokens, 28 layers, k and v of 4 x 128, float32
    CHECK(p.free_after_load(0) > 0);
    CHECK(p.cpu_matrix_dtype == (w == CpuWeights::Int8 ? DType::Q8_0 : DType::BF16));
    // 8.1 B parameters, nearly all in matrices: 2 bytes each (34/32 for Q8_0).
    const double per = w == CpuWeights::Int8 ? 34.0 / 32 : 2.0;
    CHECK(double(d.weight_bytes) > 8.0e9 * per);
    CHECK(double(d.weight_bytes) < 8.2e9 * per);
  }
}

TEST_CASE("omnid plan shows the cpu weights and their bytes", "[plan][cpu_weights][cli]") {
  const std::string base = test::bin("omnid") + " plan --model " + test::shell_quote(test::data("plan-shapes/minicpmv26")) +
                           " --devices cpu:0 --max-memory cpu:0=24GiB";
  auto r = test::run_command(base + " --cpu-weights bf16");
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("cpu weights: BF16 matrices (cpu_weights = bf16)") && Catch::Contains("15.1 GiB"));
  r = test::run_command(base + " --json");   // the checkpoint says bfloat16: auto keeps it
  REQUIRE(r.exit_code == 0);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["cpu_weights"]["setting"] == "auto");
  CHECK(j["cpu_weights"]["dtype"] == "BF16");
  r = test::run_command(base + " --cpu-weights f32");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("does not fit"));
  r = test::run_command(base + " --cpu-weights q4");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("cpu_weights: 'q4' is not one of auto, f32, bf16, int8"));
}
