#pragma once
// Logging set-up: spdlog to stderr; the level comes from OMNI_LOG_LEVEL (default info).
namespace omni {
void init_logging();
}
