#include "kernels/cpu/cpu_threads.h"

#include <cblas.h>
#include <sched.h>

#include <algorithm>
#include <atomic>

namespace omni::kernels {

namespace {

int usable_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return 1;
}

std::atomic<int> g_threads{0};   // 0: not set

}  // namespace

void set_cpu_threads(int n) { g_threads.store(std::max(1, n)); }

void blas_single_threaded() {
  static const bool once = [] {
    openblas_set_num_threads(1);
    return true;
  }();
  (void)once;
}

int cpu_threads() {
  const int n = g_threads.load();
  return n > 0 ? n : usable_cores();
}

int default_cpu_threads(int cpu_devices) { return std::max(1, usable_cores() / std::max(1, cpu_devices)); }

}  // namespace omni::kernels
