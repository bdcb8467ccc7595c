#pragma once
// A test that cannot run here (no GPU, not root, a tool not built) says so and stops:
// CTest reports it as skipped, not passed (SKIP_REGULAR_EXPRESSION in tests/CMakeLists.txt).
#include <catch2/catch.hpp>

#define OMNI_SKIP(why)             \
  do {                             \
    WARN("SKIPPED: " << why);      \
    return;                        \
  } while (0)
