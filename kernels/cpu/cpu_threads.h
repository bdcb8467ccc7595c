#pragma once
// The threads each cpu device computes with. OpenMP's default gives every thread that
// runs an op a team of all cores, and OpenBLAS (the pthreads build Debian links) keeps a
// pool of all cores too: with two cpu devices as pipeline stages on one host, two teams
// and the BLAS pool fight over the cores. So every parallel region of kernels/cpu asks for
// cpu_threads() threads, and OpenBLAS is told the same number once.
namespace omni::kernels {

// Sets the threads per cpu device (>= 1) for the ops started afterwards.
void set_cpu_threads(int n);
// The current setting; before any set_cpu_threads, the cores this process may use.
int cpu_threads();
// The default for `cpu_devices` cpu devices in a plan: the cores shared among them
// (at least 1 each). docs/PERFORMANCE.md has the measurement behind it.
int default_cpu_threads(int cpu_devices);

}  // namespace omni::kernels
