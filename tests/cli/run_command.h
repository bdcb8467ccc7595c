#pragma once
// Runs a command line through the shell, capturing stdout and stderr separately.
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace omni::test {

struct CommandResult {
  int exit_code = -1;
  std::string out, err;
};

inline CommandResult run_command(const std::string& cmd) {
  static int n = 0;
  const auto base = std::filesystem::temp_directory_path() / ("omni-cmd-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
  const std::string o = base.string() + ".out", e = base.string() + ".err";
  const int st = std::system((cmd + " >" + o + " 2>" + e).c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  auto slurp = [](const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  r.out = slurp(o);
  r.err = slurp(e);
  std::filesystem::remove(o);
  std::filesystem::remove(e);
  return r;
}

inline std::string bin(const std::string& name) { return std::string(OMNI_BIN_DIR) + "/" + name; }

// `s` as one shell word.
inline std::string shell_quote(const std::string& s) {
  std::string r = "'";
  for (char c : s) r += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return r + "'";
}

// Without the whitespace a command prints around its answer.
inline std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  size_t b = 0;
  while (b < s.size() && (s[b] == ' ' || s[b] == '\n')) ++b;
  return s.substr(b);
}

}  // namespace omni::test
