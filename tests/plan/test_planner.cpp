// The planner's promises: contiguous complete layer ranges, every component exactly
// once, caps / splits / the vision device honoured, and contradictions refused.
#include <catch2/catch.hpp>

#include <map>

#include "plan/format.h"
#include "util/error.h"
#include "plan_fixtures.h"

using namespace omni;
using plan::Parallel;

namespace {

// Layers 0..n-1 covered once, in order, by contiguous ranges; each component once.
void check_well_formed(const plan::Plan& p, const plan::ModelShape& m) {
  std::map<std::string, int> comps;
  for (const auto& d : p.devices)
    for (const auto& c : d.components) comps[c]++;
  CHECK(comps["embed"] == 1);
  CHECK(comps["lm_head"] == 1);
  CHECK(comps["final_norm"] == 1);
  CHECK(comps["vision"] == (m.vision ? 1 : 0));
  CHECK(comps["resampler"] == (m.vision ? 1 : 0));
  if (p.parallel == Parallel::Tensor) {
    for (const auto& d : p.devices) CHECK((d.first_layer == 0 && d.last_layer == m.llm.n_layers - 1));
  } else {
    int next = 0;
    for (const auto& d : p.devices) {
      if (d.first_layer < 0) continue;
      CHECK(d.first_layer == next);
      CHECK(d.last_layer >= d.first_layer);
      next = d.last_layer + 1;
    }
    CHECK(next == m.llm.n_layers);
  }
  for (size_t i = 0; i < p.devices.size(); ++i) CHECK(p.free_after_load(i) >= 0);
}

}  // namespace

TEST_CASE("pipeline plans cover every layer once over 2 and 3 devices", "[plan]") {
  for (const char* name : {"qwen2-tiny", "qwen3-tiny", "llama-tiny", "minicpmv26-tiny"}) {
    const auto m = test::shape_of(name);
    for (const char* devs : {"cpu:0,cpu:1", "cpu:0,cpu:1,cpu:2"}) {
      if (m.llm.n_layers < 3 && std::string(devs).size() > 12) continue;
      INFO(name << " on " << devs);
      const auto p = plan::make_plan(m, test::options(devs));
      CHECK(p.parallel == Parallel::Pipeline);
      check_well_formed(p, m);
      CHECK(p.devices.front().has("embed"));
      CHECK(p.devices.back().has("lm_head"));
    }
  }
}

TEST_CASE("tensor plans give every rank all layers and rank 0 the embeddings", "[plan]") {
  const auto m = test::shape_of("minicpmv26-tiny");
  const auto p = plan::make_plan(m, test::options("cpu:0,cpu:1", Parallel::Tensor));
  CHECK(p.parallel == Parallel::Tensor);
  check_well_formed(p, m);
  CHECK(p.devices[0].has("embed"));
  CHECK(p.devices[0].has("lm_head"));
  CHECK(p.devices[1].has("vision"));   // the rank with the headroom
  CHECK(p.devices[0].kv_bytes == p.devices[1].kv_bytes);
}

TEST_CASE("an explicit split is honoured", "[plan]") {
  const auto m = test::shape_of("qwen2-tiny");
  auto o = test::options("cpu:0,cpu:1");
  o.split = {2, 1};
  auto p = plan::make_plan(m, o);
  CHECK(p.devices[0].first_layer == 0);
  CHECK(p.devices[0].last_layer == 1);
  CHECK(p.devices[1].first_layer == 2);
  o.split = {1, 2};
  p = plan::make_plan(m, o);
  CHECK(p.devices[0].last_layer == 0);
  CHECK(p.devices[1].first_layer == 1);
  // A zero share leaves a device without layers; embed and head follow the stages.
  o = test::options("cpu:0,cpu:1,cpu:2");
  o.split = {0, 1, 1};
  p = plan::make_plan(m, o);
  CHECK(p.devices[0].first_layer == -1);
  CHECK(p.devices[1].has("embed"));
  CHECK(p.devices[2].has("lm_head"));
  check_well_formed(p, m);
}

TEST_CASE("memory caps are honoured and move layers away from a small device", "[plan]") {
  const auto m = test::shape_of("qwen2-tiny");
  auto o = test::options("cpu:0,cpu:1");
  const auto even = plan::make_plan(m, o);
  // Just enough for embed plus one layer on cpu:0.
  o.max_memory["cpu:0"] = even.devices[0].needed_bytes() - even.devices[0].kv_bytes / 2 + 1;
  const auto p = plan::make_plan(m, o);
  CHECK(p.devices[0].available_bytes == o.max_memory["cpu:0"]);
  CHECK(p.devices[0].first_layer == p.devices[0].last_layer);
  check_well_formed(p, m);
}

TEST_CASE("the lm_head counts in the balance", "[plan]") {
  // 3 equal layers over 2 devices: the head's device gets the smaller share.
  auto m = test::shape_of("qwen2-tiny");
  m.llm.vocab = 200000;   // a head heavier than a layer
  auto o = test::options("cpu:0,cpu:1");
  o.device_memory = [](const kernels::DeviceId&) { return int64_t(64) << 30; };
  const auto p = plan::make_plan(m, o);
  CHECK(p.devices[1].last_layer - p.devices[1].first_layer + 1 == 1);
}

TEST_CASE("the vision device is honoured", "[plan]") {
  const auto m = test::shape_of("minicpmv26-tiny");
  auto o = test::options("cpu:0,cpu:1");
  for (const char* v : {"cpu:0", "cpu:1"}) {
    o.vision_device = kernels::DeviceId::parse(v);
    const auto p = plan::make_plan(m, o);
    CHECK(p.devices[o.vision_device->index].has("vision"));
    CHECK(p.devices[o.vision_device->index].has("resampler"));
    check_well_formed(p, m);
  }
}

TEST_CASE("auto uses one device when the model fits there, pipeline otherwise", "[plan]") {
  const auto m = test::shape_of("llama-tiny");
  auto o = test::options("cpu:0,cpu:1", Parallel::Auto);
  auto p = plan::make_plan(m, o);
  CHECK(p.parallel == Parallel::Single);
  REQUIRE(p.devices.size() == 1);
  CHECK(p.devices[0].first_layer == 0);
  CHECK(p.devices[0].last_layer == 2);
  o.max_memory["cpu:0"] = p.devices[0].needed_bytes() * 2 / 3;
  p = plan::make_plan(m, o);
  CHECK(p.parallel == Parallel::Pipeline);
  CHECK(p.devices.size() == 2);
}

TEST_CASE("contradictory options are refused with a reason", "[plan][errors]") {
  const auto m = test::shape_of("qwen2-tiny");
  auto o = test::options("cpu:0,cpu:1");
  o.split = {1, 1, 1};
  CHECK_THROWS_WITH(plan::make_plan(m, o), Catch::Contains("split has 3 weights for 2 devices"));

  o = test::options("cpu:0,cpu:1");
  o.vision_device = kernels::DeviceId::parse("cpu:2");
  CHECK_THROWS_WITH(plan::make_plan(m, o), Catch::Contains("vision device cpu:2 is not in the device list"));

  o = test::options("cpu:0,cpu:1", Parallel::Tensor);
  o.split = {1, 1};
  CHECK_THROWS_WITH(plan::make_plan(m, o), Catch::Contains("tensor parallel splits every layer evenly"));

  o = test::options("cpu:0,cpu:1,cpu:2", Parallel::Tensor);
  CHECK_THROWS_WITH(plan::make_plan(m, o), Catch::Contains("4 attention heads and 2 KV heads must both divide by 3"));

  o = test::options("cpu:0,cpu:0", Parallel::Tensor);
  CHECK_THROWS_WITH(plan::make_plan(m, o), Catch::Contains("distinct devices"));

  o = test::options("cpu:0,cpu:1,cpu:2,cpu:3");
  CHECK_THROWS_WITH(plan::make_plan(m, o), Catch::Contains("at least one decoder layer each"));

  o = test::options("cpu:0,cpu:1");
  o.max_memory["cpu:7"] = 1 << 20;
  CHECK_THROWS_WITH(plan::make_plan(m, o), Catch::Contains("max_memory names cpu:7"));

  o = test::options("cuda:9");
  CHECK_THROWS_WITH(plan::make_plan(m, o), Catch::Contains("cuda:9 does not exist"));

  CHECK_THROWS_WITH(plan::parse_parallel("data"), Catch::Contains("'data'"));
  CHECK_THROWS_WITH(plan::parse_bytes("12 parsecs", "max_memory for cpu:0"), Catch::Contains("unknown unit"));
}

TEST_CASE("a cap below the weights is refused with the numbers per device", "[plan][errors]") {
  const auto m = test::shape_of("qwen2-tiny");
  auto o = test::options("cpu:0,cpu:1");
  o.max_memory["cpu:0"] = 4096;
  o.max_memory["cpu:1"] = 4096;
  try {
    plan::make_plan(m, o);
    FAIL("expected a refusal");
  } catch (const Error& e) {
    const std::string w = e.what();
    CHECK_THAT(w, Catch::Contains("does not fit"));
    CHECK_THAT(w, Catch::Contains("cpu:0: needs"));
    CHECK_THAT(w, Catch::Contains("cpu:1: needs"));
    CHECK_THAT(w, Catch::Contains("available 4.0 KiB"));
  }
}

TEST_CASE("stages on one device share its budget", "[plan]") {
  const auto m = test::shape_of("qwen2-tiny");
  auto o = test::options("cpu:0,cpu:0");
  const auto p = plan::make_plan(m, o);
  CHECK(p.free_after_load(0) == p.free_after_load(1));
  CHECK(p.free_after_load(0) == p.devices[0].available_bytes - p.devices[0].needed_bytes() - p.devices[1].needed_bytes());
}

TEST_CASE("byte sizes read and print as people write them", "[plan]") {
  CHECK(plan::parse_bytes("64MiB", "x") == 64ll << 20);
  CHECK(plan::parse_bytes("1.5GiB", "x") == 3ll << 29);
  CHECK(plan::parse_bytes("512", "x") == 512);
  CHECK(plan::format_bytes(3ll << 29) == "1.5 GiB");
}
