#pragma once
// Registration of omnid's subcommands; each is defined in cli/cmd_<name>.cpp.
#include <CLI/CLI.hpp>

namespace omni {

void add_dump_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_run_command(CLI::App& app);
void add_serve_command(CLI::App& app);
void add_plan_command(CLI::App& app);
void add_tune_command(CLI::App& app);

}  // namespace omni
