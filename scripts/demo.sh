#!/usr/bin/env bash
# Sets up, builds, and answers a question about a picture with the embedded default
# model (models/shapes, trained here; see docs/demo-model.md).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
scripts/setup.sh >/dev/null
cmake -S . -B build -G Ninja >/dev/null
cmake --build build -j "$(nproc)" --target omnid >/dev/null

model=models/shapes
image=tests/data/shapes/demo.png
question="What shape is this?"
if [ ! -f "$model/config.json" ]; then
  # Until the trained model lands: the tiny reference checkpoint (random weights).
  model=tests/data/minicpmv26-tiny
  image=tests/data/minicpmv26-tiny/case_wide/image.png
  question="$(cat tests/data/minicpmv26-tiny/case_wide/question.txt)"
fi
echo "model:    $model"
echo "picture:  $image"
echo "question: $question"
printf "answer:   "
OMNI_LOG_LEVEL=warn build/bin/omnid run --model "$model" --image "$image" --greedy --max-tokens 16 "$question"
