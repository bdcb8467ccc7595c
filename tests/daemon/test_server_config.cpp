// omnid serve's TOML settings: read, validated, unknown keys named.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "server/server_config.h"

using omni::server::ServerConfig;

namespace {
std::string write_toml(const std::string& body) {
  static int n = 0;
  auto p = std::filesystem::temp_directory_path() / ("omni-cfg-" + std::to_string(::getpid()) + "-" + std::to_string(n++) + ".toml");
  std::ofstream(p) << body;
  return p.string();
}
}  // namespace

TEST_CASE("a complete config file is read", "[config]") {
  ServerConfig c;
  c.load_toml(write_toml(R"(model = "/m"
socket = "/tmp/x.sock"
socket_mode = "0600"
allowed_gids = [1000, 1001]
devices = "cpu:0,cpu:1"
max_active = 4
max_batch_tokens = 64
enable_thinking = true
max_queue = 9
drain_seconds = 2.5
metrics_port = 9100
)"));
  CHECK(c.model == "/m");
  CHECK(c.socket == "/tmp/x.sock");
  CHECK(c.socket_mode == 0600);
  CHECK(c.allowed_gids == std::vector<uint32_t>{1000, 1001});
  CHECK(c.devices == "cpu:0,cpu:1");
  CHECK(c.max_active == 4);
  CHECK(c.max_batch_tokens == 64);
  CHECK(c.enable_thinking);
  CHECK(c.max_queue == 9);
  CHECK(c.drain_seconds == 2.5);
  CHECK(c.metrics_port == 9100);
  CHECK_NOTHROW(c.validate());
}

TEST_CASE("bad config files are refused with the key and file named", "[config]") {
  ServerConfig c;
  const std::string unknown = write_toml("modle = \"/m\"\n");
  CHECK_THROWS_WITH(c.load_toml(unknown), Catch::Contains(unknown) && Catch::Contains("unknown setting 'modle'"));
  CHECK_THROWS_WITH(c.load_toml(write_toml("max_active = \"many\"\n")), Catch::Contains("'max_active'"));
  CHECK_THROWS_WITH(c.load_toml(write_toml("model = [\n")), Catch::Contains("line"));
  ServerConfig none;
  CHECK_THROWS_WITH(none.validate(), Catch::Contains("no model"));
  ServerConfig tiny_steps;
  tiny_steps.model = "/m";
  tiny_steps.max_active = 16;
  tiny_steps.max_batch_tokens = 20;   // 16 running requests would leave 4 rows for prompts
  CHECK_THROWS_WITH(tiny_steps.validate(), Catch::Contains("max_batch_tokens"));
}
