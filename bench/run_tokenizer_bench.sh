#!/usr/bin/env bash
# Tokenizer speed, ours vs the peer (@lenml/tokenizers under node), on the same text.
#   bench/run_tokenizer_bench.sh [BUILD_DIR] [MB]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"
mb="${2:-8}"
[ -d "$root/.cache/peer/node_modules/@lenml/tokenizers" ] || npm install --prefix "$root/.cache/peer" @lenml/tokenizers
text="$(mktemp)"
for m in qwen3 llama3; do
  echo "== $m"
  printf 'omnid: '; "$build/bin/bench_tokenizer" "$root/.cache/testdata/$m" "$root/tests/data" "$mb" --write-text "$text"
  printf 'peer:  '; node "$root/tools/tokenizer_peer.js" bench "$root/.cache/testdata/$m" "$text" 3
done
rm -f "$text"
