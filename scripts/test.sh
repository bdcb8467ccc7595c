#!/usr/bin/env bash
# Sets up, builds and runs every test through ctest.
#   scripts/test.sh              warnings as errors, RelWithDebInfo, build/
#   scripts/test.sh --sanitize   the same under AddressSanitizer + UBSan, build-asan/
#   scripts/test.sh --tsan       the threaded suites under ThreadSanitizer, build-tsan/
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"

build=build
# -g1 (line tables: enough for backtraces and sanitizer reports) instead of RelWithDebInfo's
# -g: full debug info is a sixth of the compile time of the Asio-heavy files, in CI too.
# Configure a build of your own for a debugger.
extra=("-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG")
targets=()
tests=()
if [ "${1:-}" = "--tsan" ]; then
  # ThreadSanitizer over the threaded suites only (not part of CI: a developer check).
  build=build-tsan
  extra=(-DOMNI_TSAN=ON -DOMNI_CUDA=OFF -DOMNI_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -g"
         "-DCMAKE_C_FLAGS_DEBUG=-O1 -g")
  targets=(--target test_plan test_sched test_daemon test_http omnid omni)
  tests=(-R "plan:|sched:|daemon:|http:")
  export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
  export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1}"
elif [ "${1:-}" = "--sanitize" ]; then
  build=build-asan
  # -O1: quick to compile, quick enough to run the numeric suites under the sanitizers.
  # Benchmarks are left out and -g1 (line tables, enough for the sanitizers' stack traces)
  # replaces -g: nothing runs the benchmarks here, and both cost CI build minutes.
  extra=(-DOMNI_SANITIZE=ON -DOMNI_CUDA=OFF -DOMNI_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -g1"
         "-DCMAKE_C_FLAGS_DEBUG=-O1 -g1")
fi

scripts/setup.sh
cmake -S . -B "$build" -G Ninja -DOMNI_WERROR=ON "${extra[@]}"
cmake --build "$build" -j "$(nproc)" "${targets[@]}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(nproc)}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
ctest --test-dir "$build" --output-on-failure -j "$(nproc)" --timeout 900 "${tests[@]}"
