#include "util/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "util/error.h"

namespace omni {

void set_log_level(const std::string& name, const std::string& source) {
  std::string n = name;
  std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  static const std::pair<const char*, spdlog::level::level_enum> kLevels[] = {
      {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug}, {"info", spdlog::level::info},
      {"warn", spdlog::level::warn},   {"warning", spdlog::level::warn}, {"error", spdlog::level::err},
      {"critical", spdlog::level::critical}, {"off", spdlog::level::off}};
  for (const auto& [text, level] : kLevels)
    if (n == text) {
      spdlog::set_level(level);
      return;
    }
  throw UsageError(source + ": unknown log level '" + name +
                   "' (one of trace, debug, info, warn, error, critical, off)");
}

void init_logging() {
  auto logger = spdlog::stderr_color_mt("omnid");
  logger->set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::info);
  if (const char* lvl = std::getenv("OMNI_LOG_LEVEL"); lvl && *lvl) set_log_level(lvl, "OMNI_LOG_LEVEL");
}

}  // namespace omni
