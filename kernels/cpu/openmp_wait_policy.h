#pragma once
// Called first in main() of an executable that runs cpu devices (omnid, the CPU
// benchmarks). How OpenMP's worker threads wait between parallel regions decides decode
// speed: a decode step is a few hundred short regions, and a worker that went to sleep
// after one takes a wake-up to join the next (batch-1 decode at half speed with passive
// waiting), while workers spinning without bound burn the cores other work needs
// (docs/PERFORMANCE.md, "CPU threads per device"). So the default is to spin briefly,
// GOMP_SPINCOUNT=10000 (a fraction of a millisecond), then sleep. OpenBLAS runs
// single-threaded inside the regions (kernels/cpu/cpu_threads.h), so its pool does not spin.
// libgomp reads these once, while the program loads, so the default is set by running the
// program again with them (same pid, same descriptors: socket activation is unaffected).
// An OMP_WAIT_POLICY or GOMP_SPINCOUNT already in the environment wins, and so it runs once.
#include <unistd.h>

#include <cstdlib>

namespace omni::kernels {

inline void brief_openmp_spin_by_default(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT")) return;
  ::setenv("OMP_WAIT_POLICY", "active", 1);
  ::setenv("GOMP_SPINCOUNT", "10000", 1);
  ::execv("/proc/self/exe", argv);   // returns only on failure: then serve on as we are
}

}  // namespace omni::kernels
