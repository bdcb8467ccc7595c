// The serve config file's placement keys reach ServerConfig (the daemon hands them to
// the planner as the matching flags would).
#include <catch2/catch.hpp>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "server/server_config.h"
#include "util/error.h"

namespace {

omni::server::ServerConfig load(const std::string& toml) {
  const auto path = std::filesystem::temp_directory_path() / ("omni_plan_cfg_" + std::to_string(::getpid()) + ".toml");
  std::ofstream(path) << toml;
  omni::server::ServerConfig c;
  c.load_toml(path.string());
  std::filesystem::remove(path);
  return c;
}

}  // namespace

TEST_CASE("placement keys in the serve config file", "[plan][config]") {
  auto c = load(
      "devices = \"cpu:0,cpu:1\"\nuse_multi_gpu = false\nparallel = \"tensor\"\n"
      "max_memory = { \"cpu:0\" = \"64MiB\", \"cpu:1\" = \"1GiB\" }\nsplit = [3, 1]\nvision_device = \"cpu:1\"\n");
  CHECK(c.devices == "cpu:0,cpu:1");
  CHECK_FALSE(c.use_multi_gpu);
  CHECK(c.parallel == "tensor");
  CHECK(c.max_memory == "cpu:0=64MiB,cpu:1=1GiB");
  CHECK(std::stod(c.split.substr(0, c.split.find(','))) == 3);
  CHECK(c.vision_device == "cpu:1");

  c = load("max_memory = \"cuda:0=20GiB\"\nsplit = \"2,1\"\n");
  CHECK(c.max_memory == "cuda:0=20GiB");
  CHECK(c.split == "2,1");
  CHECK(c.use_multi_gpu);
  CHECK(c.devices.empty());   // discovered at load time

  CHECK_THROWS_WITH(load("use_multi_gpu = \"yes\"\n"), Catch::Contains("'use_multi_gpu' must be true or false"));
  CHECK_THROWS_WITH(load("split = 3\n"), Catch::Contains("'split' must be a string, an array or a table"));
}

TEST_CASE("cpu_weights in the serve config file", "[plan][config][cpu_weights]") {
  omni::server::ServerConfig c = load("model = \"m\"\ncpu_weights = \"int8\"\n");
  CHECK(c.cpu_weights == "int8");
  CHECK_NOTHROW(c.validate());
  CHECK(load("").cpu_weights == "auto");
  c = load("model = \"m\"\ncpu_weights = \"q4\"\n");
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("cpu_weights: 'q4' is not one of auto, f32, bf16, int8"));
}
