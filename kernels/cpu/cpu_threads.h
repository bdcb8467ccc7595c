#pragma once
// The threads each cpu device computes with. OpenMP's default gives every thread that
// runs an op a team of all cores, and OpenBLAS (the pthreads build Debian links) keeps a
// pool of all cores too: with two cpu devices as pipeline stages on one host, two teams
// and the BLAS pool fight over the cores, and even one device's OpenMP team and BLAS pool
// take turns spinning on the same cores. So one pool computes per device: every parallel
// region of kernels/cpu asks for cpu_threads() threads (libgomp keeps a team per calling
// thread, i.e. per device's stage thread), and OpenBLAS runs single-threaded inside those
// regions, each thread multiplying its own tiles (kernels/cpu/cpu_matmul.h).
namespace omni::kernels {

// Sets the threads per cpu device (>= 1) for the ops started afterwards.
void set_cpu_threads(int n);
// The current setting; before any set_cpu_threads, the cores this process may use.
int cpu_threads();
// Tells OpenBLAS to run every call on the calling thread (once per process; CpuOps does it).
void blas_single_threaded();
// The default for `cpu_devices` cpu devices in a plan: the cores shared among them
// (at least 1 each). docs/PERFORMANCE.md has the measurement behind it.
int default_cpu_threads(int cpu_devices);

}  // namespace omni::kernels
