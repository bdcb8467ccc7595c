#pragma once
// Called first in main() of an executable that runs cpu devices (omnid, the CPU
// benchmark). OpenMP's worker threads spin between parallel regions by default, and
// OpenBLAS's pthreads pool spins too: sharing the cores, each burns the time the other
// needs (on the 2-core VM, prefill with 2 threads is 4x slower than with 1 when OpenMP
// spins, and as fast or faster when it waits passively: docs/PERFORMANCE.md). libgomp
// reads OMP_WAIT_POLICY once, while the program loads, so the default is set by running
// the program again with it (same pid, same descriptors: socket activation is unaffected).
// An OMP_WAIT_POLICY already in the environment wins, and so it runs once.
#include <unistd.h>

#include <cstdlib>

namespace omni::kernels {

inline void passive_openmp_by_default(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY")) return;
  ::setenv("OMP_WAIT_POLICY", "passive", 1);
  ::execv("/proc/self/exe", argv);   // returns only on failure: then serve on as we are
}

}  // namespace omni::kernels
