#!/usr/bin/env bash
# Sets up, builds, starts the daemon on the embedded default model placed over two CPU
# devices, asks about a picture through the plugin (examples/c_host dlopens
# libomni_plugin.so), prints the answer, and stops the daemon.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
echo "demo: setting up and building (first run takes several minutes)..."
scripts/setup.sh >/dev/null
cmake -S . -B build -G Ninja >/dev/null
cmake --build build -j "$(nproc)" --target omnid omni_plugin omni_c_host >/dev/null

model=models/shapes
image=tests/data/shapes/demo.png
question="What shape is this?"
if [ ! -f "$model/model.safetensors" ] || [ ! -f "$image" ]; then
  # Until the trained model lands: the tiny reference checkpoint (random weights).
  model=tests/data/minicpmv26-tiny
  image=tests/data/minicpmv26-tiny/case_wide/image.png
  question="$(cat tests/data/minicpmv26-tiny/case_wide/question.txt)"
fi

run_dir="$(mktemp -d)"
socket="$run_dir/omnid.sock"
OMNI_LOG_LEVEL=warn build/bin/omnid serve --model "$model" --socket "$socket" --devices cpu:0,cpu:1 --parallel pipeline \
  >"$run_dir/omnid.log" 2>&1 &
daemon=$!
cleanup() {
  kill -TERM "$daemon" 2>/dev/null || true
  wait "$daemon" 2>/dev/null || true
  rm -rf "$run_dir"
}
trap cleanup EXIT
for _ in $(seq 1 200); do
  [ -S "$socket" ] && break
  kill -0 "$daemon" 2>/dev/null || { cat "$run_dir/omnid.log"; exit 1; }
  sleep 0.1
done

echo "model:    $model (layers over cpu:0,cpu:1)"
echo "picture:  $image"
echo "question: $question"
printf "answer:   "
OMNI_PLUGIN="$here/build/lib/libomni_plugin.so" build/bin/omni_c_host --socket "$socket" \
  --image "$image" --greedy --max-tokens 16 "$question"
