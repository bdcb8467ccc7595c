#!/usr/bin/env bash
# Fetches the CPU benchmark's peer, llama.cpp as npm ships it (node-llama-cpp and its
# prebuilt linux-x64 build), into .cache/testdata/node-llama-cpp (git-ignored), for
# bench/run_cpu_bench.sh. Never a dependency of omnid and not called by CI.
# Idempotent: returns at once when the pinned version is already there.
#
# --ignore-scripts: node-llama-cpp's postinstall would try to download or build a
# llama.cpp of its own; the prebuilt package below is what it loads instead.
# --omit=optional: its optional dependencies are every platform's prebuilt build (CUDA,
# Vulkan, macOS, Windows ...); only the plain linux-x64 one is named explicitly.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
dst="$here/.cache/testdata/node-llama-cpp"
version=3.22.1
installed() {   # package folder under node_modules
  grep -q "\"version\": \"$version\"" "$dst/node_modules/$1/package.json" 2>/dev/null
}
if installed node-llama-cpp && installed @node-llama-cpp/linux-x64; then
  echo "fetch: node-llama-cpp@$version already in $dst"
  exit 0
fi
command -v npm >/dev/null || { echo "fetch: npm not found"; exit 1; }
mkdir -p "$dst"
npm install --prefix "$dst" --no-save --no-audit --no-fund --silent --ignore-scripts --omit=optional \
  "node-llama-cpp@$version" "@node-llama-cpp/linux-x64@$version"
installed node-llama-cpp && installed @node-llama-cpp/linux-x64 || { echo "fetch: node-llama-cpp@$version missing after install"; exit 1; }
echo "fetch: node-llama-cpp@$version -> $dst"
