#pragma once
// Logging set-up: spdlog to stderr; the level comes from OMNI_LOG_LEVEL (default info).
#include <string>

namespace omni {

// Names are case-insensitive: trace, debug, info, warn (or warning), error, critical, off.
// Anything else is a UsageError listing them (spdlog's own parser turns an unknown name
// such as "WARN" into "off", silently).
void init_logging();
void set_log_level(const std::string& name, const std::string& source);

}  // namespace omni
