// Copies of the vision tower and resampler over the plan's devices (plan/plan.h
// "vision_copy"): budgeted on every device with room by default, left out (and named) where
// there is none, chosen with vision_devices (a chosen device without room is a usage error
// naming it and the bytes), loaded by make_placement, and shown by `omnid plan`.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/run_command.h"
#include "plan/placement.h"
#include "plan/plan_fixtures.h"
#include "server/server_config.h"
#include "util/error.h"

using namespace omni;
using kernels::DeviceId;

namespace {

std::vector<std::string> names(const std::vector<DeviceId>& ids) {
  std::vector<std::string> out;
  for (const auto& d : ids) out.push_back(d.str());
  return out;
}

const plan::DevicePlan& entry(const plan::Plan& p, const std::string& id) {
  for (const auto& d : p.devices)
    if (d.id.str() == id) return d;
  FAIL("no plan entry for " << id);
  throw;
}

}  // namespace

TEST_CASE("a plan over several devices holds a vision copy on each and the placement loads them", "[plan][vision]") {
  const auto m = test::shape_of("minicpmv26-tiny");
  for (auto par : {plan::Parallel::Pipeline, plan::Parallel::Tensor}) {
    INFO(plan::to_string(par));
    const plan::Plan p = plan::make_plan(m, test::options("cpu:0,cpu:1", par));
    const auto vision = names(p.vision_devices());
    REQUIRE(vision.size() == 2);
    const std::string copy = vision[1];
    CHECK(vision[0] != copy);
    const auto& d = entry(p, copy);
    CHECK(d.has("vision_copy"));
    CHECK(d.has("resampler_copy"));
    CHECK_FALSE(d.has("vision"));
    CHECK(d.vision_bytes > 0);
    CHECK(entry(p, vision[0]).vision_bytes > 0);
    CHECK(p.vision_left_out.empty());
    const DecoderPlacement place = plan::make_placement(p);
    REQUIRE(place.vision_copies.size() == 1);
    CHECK(place.vision_copies[0]->id().str() == copy);
    CHECK(place.vision_device->id().str() == vision[0]);
    CHECK(place.devices().size() == 2);
  }
  // One device, two stages on one device, a text model: nothing to copy.
  CHECK(plan::make_plan(m, test::options("cpu:0")).vision_devices().size() == 1);
  CHECK(plan::make_plan(m, test::options("cpu:0,cpu:0")).vision_devices().size() == 1);
  CHECK(plan::make_placement(plan::make_plan(m, test::options("cpu:0"))).vision_copies.empty());
  CHECK(plan::make_plan(test::shape_of("qwen2-tiny"), test::options("cpu:0,cpu:1")).vision_devices().empty());
  // auto on one device when the model fits there: the plan lists one device, so one copy.
  CHECK(plan::make_plan(m, test::options("cpu:0,cpu:1", plan::Parallel::Auto)).devices.size() == 1);
}

TEST_CASE("a device without room for a vision copy is left out with its numbers", "[plan][vision]") {
  const auto m = test::shape_of("minicpmv26-tiny");
  plan::PlanOptions o = test::options("cpu:0,cpu:1");
  o.vision_device = DeviceId::parse("cpu:0");
  const plan::Plan full = plan::make_plan(m, o);
  const auto& d1 = entry(full, "cpu:1");
  REQUIRE(d1.has("vision_copy"));
  // cpu:1 capped to its decoder part plus half a copy.
  const int64_t without = d1.needed_bytes() - d1.vision_bytes;
  o.max_memory["cpu:1"] = without + d1.vision_bytes / 2;
  const plan::Plan p = plan::make_plan(m, o);
  CHECK(names(p.vision_devices()) == std::vector<std::string>{"cpu:0"});
  CHECK_FALSE(entry(p, "cpu:1").has("vision_copy"));
  REQUIRE(p.vision_left_out.size() == 1);
  CHECK(p.vision_left_out[0].id.str() == "cpu:1");
  CHECK(p.vision_left_out[0].needed_bytes == d1.vision_bytes);
  CHECK(p.vision_left_out[0].free_bytes == d1.vision_bytes / 2);
  CHECK(p.table().find("no vision copy on cpu:1") != std::string::npos);
  const auto j = nlohmann::json::parse(p.json());
  CHECK(j["vision_devices"] == nlohmann::json::array({"cpu:0"}));
  CHECK(j["vision_left_out"][0]["device"] == "cpu:1");

  // Chosen explicitly, the same device is refused: a usage error naming it and the bytes.
  o.vision_devices = DeviceId::parse_list("cpu:0,cpu:1");
  try {
    plan::make_plan(m, o);
    FAIL("planned a vision copy without room");
  } catch (const UsageError& e) {
    const std::string what = e.what();
    CHECK_THAT(what, Catch::Contains("cpu:1") && Catch::Contains("needs") && Catch::Contains("free") &&
                         Catch::Contains("MiB"));
  }
}

TEST_CASE("vision_devices chooses the copies and the primary among them", "[plan][vision]") {
  const auto m = test::shape_of("minicpmv26-tiny");
  plan::PlanOptions o = test::options("cpu:0,cpu:1,cpu:2");
  o.split = {1, 0, 1};   // two layers: cpu:1 holds none
  o.vision_devices = DeviceId::parse_list("cpu:2,cpu:1");
  plan::Plan p = plan::make_plan(m, o);
  auto vision = names(p.vision_devices());
  std::sort(vision.begin(), vision.end());
  CHECK(vision == std::vector<std::string>{"cpu:1", "cpu:2"});
  CHECK_FALSE(entry(p, "cpu:0").has("vision"));
  CHECK_FALSE(entry(p, "cpu:0").has("vision_copy"));

  // Under auto a model that fits on cpu:0 stays there; a chosen cpu:1 gets a copy in an
  // entry without layers.
  o = test::options("cpu:0,cpu:1", plan::Parallel::Auto);
  o.vision_devices = DeviceId::parse_list("cpu:0,cpu:1");
  p = plan::make_plan(m, o);
  CHECK(p.parallel == plan::Parallel::Single);
  REQUIRE(p.devices.size() == 2);
  CHECK(p.devices[1].first_layer == -1);
  CHECK(p.devices[1].components == std::vector<std::string>{"vision_copy", "resampler_copy"});
  const DecoderPlacement place = plan::make_placement(p);
  for (const auto& d : place.layer_devices) CHECK(d->id().str() == "cpu:0");
  REQUIRE(place.vision_copies.size() == 1);
  CHECK(place.vision_copies[0]->id().str() == "cpu:1");

  o = test::options("cpu:0,cpu:1");
  o.vision_devices = DeviceId::parse_list("cpu:0,cpu:3");
  CHECK_THROWS_WITH(plan::make_plan(m, o), Catch::Contains("vision_devices names cpu:3, which is not in the device list"));
  o.vision_devices = DeviceId::parse_list("cpu:1,cpu:1");
  CHECK_THROWS_WITH(plan::make_plan(m, o), Catch::Contains("lists cpu:1 twice"));
  o.vision_devices = DeviceId::parse_list("cpu:1");
  o.vision_device = DeviceId::parse("cpu:0");
  CHECK_THROWS_WITH(plan::make_plan(m, o), Catch::Contains("vision device cpu:0 is not one of vision_devices"));
}

TEST_CASE("omnid plan shows the vision copies and refuses a chosen device without room with exit 2", "[plan][vision][cli]") {
  const std::string model = test::shell_quote(test::data("minicpmv26-tiny"));
  // float32 matrices: the caps below are sized for them (the tiny checkpoint is bf16).
  const std::string base =
      test::bin("omnid") + " plan --model " + model + " --devices cpu:0,cpu:1 --parallel pipeline --cpu-weights f32";
  auto r = test::run_command(base + " --max-memory cpu:0=64MiB,cpu:1=64MiB");
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("vision copies (pictures and frames split among them): cpu:0 (primary") &&
                        Catch::Contains("cpu:1 (copy, ") && Catch::Contains("vision_copy,resampler_copy"));
  r = test::run_command(base + " --max-memory cpu:0=64MiB,cpu:1=52MiB --json");
  REQUIRE(r.exit_code == 0);
  CHECK(nlohmann::json::parse(r.out)["vision_left_out"][0]["device"] == "cpu:1");
  r = test::run_command(base + " --max-memory cpu:0=64MiB,cpu:1=52MiB --vision-devices cpu:0,cpu:1");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("vision_devices: cpu:1 has no room") && Catch::Contains("needs 1.8 MiB"));
  r = test::run_command(base + " --vision-devices cpu:0,gpu:1");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("vision_devices"));
}

TEST_CASE("vision_devices in the serve config file as a string or an array", "[plan][config][vision]") {
  const auto path = std::filesystem::temp_directory_path() / ("omni_vision_cfg_" + std::to_string(::getpid()) + ".toml");
  auto load = [&](const std::string& toml) {
    std::ofstream(path) << toml;
    server::ServerConfig c;
    c.load_toml(path.string());
    return c.vision_devices;
  };
  CHECK(load("vision_devices = \"cpu:0,cpu:1\"\n") == "cpu:0,cpu:1");
  CHECK(load("vision_devices = [\"cuda:0\", \"cuda:1\"]\n") == "cuda:0,cuda:1");
  CHECK(load("devices = \"cpu:0\"\n").empty());
  CHECK_THROWS_WITH(load("vision_devices = [1, 2]\n"), Catch::Contains("'vision_devices' must hold strings"));
  std::filesystem::remove(path);
}
