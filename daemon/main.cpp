// omnid: the command-line entry. Each subcommand lives in cli/cmd_<name>.cpp.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <exception>

#include "cli/commands.h"
#include "util/logging.h"

int main(int argc, char** argv) {
  CLI::App app{"omnid: MiniCPM-V inference engine and daemon"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "omnid 0.1.0");
  omni::add_dump_command(app);
  omni::add_run_command(app);
  omni::add_serve_command(app);
  omni::add_tokenize_command(app);
  omni::add_plan_command(app);
  omni::add_tune_command(app);
  try {
    omni::init_logging();
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "omnid: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
