// The example hosts (examples/) against the in-test fake server.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "fakes/fake_server.h"
#include "../ipc/ipc_test_util.h"
#include "util/skip.h"

namespace {
std::string run(const std::string& cmd, int* code) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p);
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int st = ::pclose(p);
  *code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}
std::string make_image(const std::string& dir) {
  const std::string img = dir + "/pic.png";
  FILE* f = std::fopen(img.c_str(), "wb");
  std::fputs("\x89PNG fake image bytes", f);
  std::fclose(f);
  return img;
}
}  // namespace

TEST_CASE("examples: C host, workflow host and Python host talk through the plugin") {
#ifdef OMNI_SANITIZED
  // The sanitized plugin needs the sanitizer runtimes in the host process; the example
  // hosts (C, Python) do not carry them.
  OMNI_SKIP("in a sanitizer build");
#endif
  omni_test::TempDir dir;
  const std::string sock = dir.path + "/omnid.sock";
  omni_test::FakeServer server(sock);
  const std::string img = make_image(dir.path);
  const std::string bin = OMNI_BIN_DIR;
  const std::string plugin = OMNI_PLUGIN_PATH;
  int code = -1;
  if (std::filesystem::exists(bin + "/omni_c_host")) {
    auto out = run(bin + "/omni_c_host --plugin " + plugin + " --socket " + sock + " --image " + img + " 'What is it?'", &code);
    REQUIRE(code == 0);
    REQUIRE(out == "A fake answer.\n");
    // no daemon -> exit 2
    run(bin + "/omni_c_host --plugin " + plugin + " --socket " + dir.path + "/none.sock 'q' 2>/dev/null", &code);
    REQUIRE(code == 2);
  } else {
    WARN("omni_c_host not built");
  }
  if (std::filesystem::exists(bin + "/omni_workflow_host")) {
    auto out = run(bin + "/omni_workflow_host --plugin " + plugin + " --socket " + sock + " " + img, &code);
    REQUIRE(code == 0);
    REQUIRE(out.find("[describe] (stop") != std::string::npos);
    REQUIRE(out.find("[summary] (stop") != std::string::npos);
    REQUIRE(out.find("\"active_requests\"") != std::string::npos);
    std::lock_guard lk(server.mu);
    REQUIRE(server.prompts.back() == "Summarise in one sentence: A fake answer.");
  } else {
    WARN("omni_workflow_host not built");
  }
  const std::string py = std::string(OMNI_SOURCE_DIR) + "/examples/python_host/omni_host.py";
  if (std::system("python3 -c 'import ctypes' >/dev/null 2>&1") == 0) {
    auto out = run("python3 " + py + " --plugin " + plugin + " --socket " + sock + " --image " + img + " --status 'What is it?'", &code);
    REQUIRE(code == 0);
    REQUIRE(out.rfind("A fake answer.\n", 0) == 0);
    REQUIRE(out.find("\"active_requests\"") != std::string::npos);
  } else {
    WARN("python3 not available");
  }
}
