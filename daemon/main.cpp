// omnid: the command-line entry. Each subcommand lives in cli/cmd_<name>.cpp.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "cli/commands.h"
#include "kernels/backend.h"
#include "kernels/cpu/openmp_wait_policy.h"
#include "omni_version.h"
#include "util/error.h"
#include "util/logging.h"

namespace {

// Exit codes (docs/operations.md): 0 done, 1 a failure while running, 2 a usage or
// configuration mistake (found before any weight is read: systemd's unit does not
// restart on it).
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// What this build is and which backends this machine offers; creates no device.
std::string version_text() {
  std::string s = "omnid " OMNI_VERSION " (git " OMNI_GIT_REVISION ")\nbackends built: " OMNI_BACKENDS_BUILT "\n";
  for (const auto& b : omni::kernels::backend_statuses())
    s += "  " + b.name + ": " + (b.available ? "available" : "not available") + (b.detail.empty() ? "" : ", " + b.detail) + "\n";
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  omni::kernels::brief_openmp_spin_by_default(argv);
  CLI::App app{"omnid: MiniCPM-V inference engine and daemon"};
  app.require_subcommand(1);
  app.footer("Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.\n"
             "Environment: OMNI_LOG_LEVEL (trace, debug, info, warn, error, critical, off).");
  bool version = false;   // handled before parsing: it needs no subcommand
  app.add_flag("--version", version, "Print the version, git revision and backends, then exit");
  if (argc >= 2 && std::string(argv[1]) == "--version") {
    std::fputs(version_text().c_str(), stdout);
    return 0;
  }
  omni::add_dump_command(app);
  omni::add_run_command(app);
  omni::add_serve_command(app);
  omni::add_tokenize_command(app);
  omni::add_plan_command(app);
  omni::add_tune_command(app);
  try {
    omni::init_logging();
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);   // --help
  } catch (const CLI::ParseError& e) {
    app.exit(e);   // prints CLI11's message
    return kExitUsage;
  } catch (const omni::UsageError& e) {
    std::fprintf(stderr, "omnid: error: %s\n", e.what());
    return kExitUsage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "omnid: error: %s\n", e.what());
    return kExitFailure;
  }
  return 0;
}
