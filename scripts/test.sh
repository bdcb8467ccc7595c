#!/usr/bin/env bash
# Sets up, builds and runs every test through ctest.
#   scripts/test.sh              warnings as errors, RelWithDebInfo, build/
#   scripts/test.sh --sanitize   the same under AddressSanitizer + UBSan, build-asan/
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"

build=build
extra=()
if [ "${1:-}" = "--sanitize" ]; then
  build=build-asan
  # -O1: quick to compile, quick enough to run the numeric suites under the sanitizers.
  # Benchmarks are left out: nothing runs them here, and they cost CI build minutes.
  extra=(-DOMNI_SANITIZE=ON -DOMNI_CUDA=OFF -DOMNI_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -g"
         "-DCMAKE_C_FLAGS_DEBUG=-O1 -g")
fi

scripts/setup.sh
cmake -S . -B "$build" -G Ninja -DOMNI_WERROR=ON "${extra[@]}"
cmake --build "$build" -j "$(nproc)"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(nproc)}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
ctest --test-dir "$build" --output-on-failure -j "$(nproc)" --timeout 900
