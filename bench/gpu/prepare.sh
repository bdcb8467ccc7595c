#!/usr/bin/env bash
# Run HERE (no GPU needed) before a device session: builds the CUDA test and benchmark in
# build-cuda/, copies them stripped into build-gpu/bin and collects every shared library
# the lent GPU machine (Ubuntu 24.04, CUDA 13.0, no package registry) may lack into
# build-gpu/lib-carry. Then call the device tool with carry ["build-gpu"] and the command
# "bash bench/gpu/run.sh" (docs/cuda.md). build-gpu/ is ignored by git (/build*/).
set -euo pipefail
cd "$(dirname "$0")/../.."
SRC=${OMNI_CUDA_BUILD:-build-cuda}
if [ ! -f "$SRC/build.ninja" ]; then
  cmake -S . -B "$SRC" -G Ninja -DOMNI_CUDA=ON
fi
ninja -C "$SRC" -j"${JOBS:-2}" test_cuda bench_decode omni_backend_nccl
rm -rf build-gpu
mkdir -p build-gpu/bin build-gpu/lib build-gpu/lib-carry
for b in test_cuda bench_decode; do
  cp "$SRC/bin/$b" build-gpu/bin/
  strip --strip-all "build-gpu/bin/$b"
done
# Our own libraries (the binaries find them at $ORIGIN/../lib; the backends are loaded
# from beside libomni_kernels.so: kernels/backend.h).
for l in libomni_kernels.so libomni_backend_cuda.so libomni_backend_nccl.so; do
  cp "$SRC/lib/$l" build-gpu/lib/
  strip --strip-unneeded "build-gpu/lib/$l"
done
# Libraries the GPU machine provides itself: glibc, the C++ runtime (newer there), the
# driver, and the CUDA 13 toolkit's cudart/cuBLAS/NCCL (/usr/local/cuda or torch's wheels).
skip='^(linux-vdso|ld-linux|libc\.|libm\.|libdl\.|librt\.|libpthread\.|libstdc\+\+|libgcc_s|libcuda\.|libcudart|libcublas|libcublasLt|libnccl)'
for b in build-gpu/bin/* build-gpu/lib/*; do
  ldd "$b" | awk '/=> \//{print $1, $3}' | while read -r name path; do
    [[ $name == libomni_* ]] && continue
    if ! [[ $name =~ $skip ]]; then cp -Lu "$path" "build-gpu/lib-carry/$name"; fi
  done
done
# The CUDA sonames the binaries want, for run.sh to check against the machine's.
for b in build-gpu/bin/* build-gpu/lib/*; do ldd "$b" | awk '/libcu|libnccl/{print $1}'; done | sort -u > build-gpu/cuda-sonames.txt
ls build-gpu/lib-carry
# OpenBLAS alone is ~36 MB: compress the libraries (run.sh unpacks them) to stay well
# inside the 64 MiB that a device call may carry with the working tree.
tar -C build-gpu -cf - lib-carry | xz -T2 -6 > build-gpu/lib-carry.tar.xz
rm -rf build-gpu/lib-carry
du -sh build-gpu/bin/* build-gpu/lib/* build-gpu/lib-carry.tar.xz
echo "carry: build-gpu ($(du -sm build-gpu | cut -f1) MiB of the 64 MiB limit, with the working tree)"
