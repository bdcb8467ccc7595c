#!/usr/bin/env bash
# CPU decode, omnid vs llama.cpp (issue #19's benchmark): prefill PROMPT tokens and decode
# DECODE tokens at 1 and 2 threads with F32, BF16 and int8/Q8_0 weights, on the same random
# Qwen2-0.5B-shaped weights in both engines; tokens/s, peak RSS, and each decode's share of
# the host's memory copy and read bandwidth (weight bytes x decode tok/s / bandwidth).
#
#   bench/run_cpu_bench.sh BUILD MODEL OUT
#
# Once, before it:
#   cmake -S . -B build -DOMNI_BENCH=ON ... && ninja -C build bench_membw bench_cpu_decode
#   scripts/fetch_bench_peers.sh                               # node-llama-cpp -> .cache/testdata
#   /usr/bin/python3 tools/make_cpu_bench_model.py MODEL       # ~4.4 GB: HF bf16 + three GGUFs
# e.g. bench/run_cpu_bench.sh build /tmp/cpu-bench-model /tmp/cpu-bench-out
#
# Runs bench_membw first, then for each weight type and thread count omnid's run
# (bench/bench_cpu_decode.cpp) and llama.cpp's (bench/cpu_peer/llama_cpp_bench.mjs), one
# process per run, one after another. JSON lines go to OUT/membw.jsonl, OUT/omnid.jsonl and
# OUT/llama_cpp.jsonl (appended, so OUT is emptied first); OUT/table.md is the table
# (bench/cpu_bench_table.py), also printed. Every run's stderr goes to OUT/log.txt.
# Environment: PROMPT (512), DECODE (64), THREADS ("1 2"), WEIGHTS ("f32 bf16 int8"),
# MEMBW_MIB (1024 per buffer). On a shared machine the numbers are as noisy as it is busy:
# llama.cpp's threads spin-wait at every op's barrier, so with other work on a 2-core host
# its 2-thread runs fall far below its 1-thread ones (omnid's OpenMP waits passively,
# kernels/cpu/openmp_wait_policy.h); compare 2-thread rows on an otherwise idle host only.
set -euo pipefail
[ $# -eq 3 ] || { sed -n '2,/^set -e/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 2; }
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$1" model="$2" out="$3"
prompt="${PROMPT:-512}" decode="${DECODE:-64}"
threads="${THREADS:-1 2}" weights="${WEIGHTS:-f32 bf16 int8}"
peer="$root/.cache/testdata/node-llama-cpp/node_modules/node-llama-cpp"

for b in bench_membw bench_cpu_decode; do
  [ -x "$build/bin/$b" ] || { echo "run_cpu_bench: $build/bin/$b missing (configure with -DOMNI_BENCH=ON, ninja $b)"; exit 1; }
done
[ -f "$model/config.json" ] || { echo "run_cpu_bench: $model/config.json missing (tools/make_cpu_bench_model.py $model)"; exit 1; }
[ -d "$peer" ] || { echo "run_cpu_bench: node-llama-cpp missing (scripts/fetch_bench_peers.sh)"; exit 1; }
mkdir -p "$out"
rm -f "$out"/membw.jsonl "$out"/omnid.jsonl "$out"/llama_cpp.jsonl "$out"/table.md "$out"/log.txt

gguf_of() { case "$1" in int8) echo q8_0 ;; *) echo "$1" ;; esac; }
run() {   # label, output file, command...
  local label="$1" file="$2"; shift 2
  echo "run_cpu_bench: $label" >&2
  echo "== $label: $*" >>"$out/log.txt"
  "$@" >>"$file" 2>>"$out/log.txt" || { echo "run_cpu_bench: $label failed (see $out/log.txt)" >&2; return 1; }
}

run "memory bandwidth, threads ${threads// /,}" "$out/membw.jsonl" \
  "$build/bin/bench_membw" --mib "${MEMBW_MIB:-1024}" --threads "$(echo $threads | tr ' ' ',')"
status=0
for w in $weights; do
  g="$(gguf_of "$w")"
  [ -f "$model/model-$g.gguf" ] || { echo "run_cpu_bench: $model/model-$g.gguf missing"; exit 1; }
  for t in $threads; do
    run "omnid $w, $t thread(s)" "$out/omnid.jsonl" "$build/bin/bench_cpu_decode" --model "$model" \
      --cpu-weights "$w" --threads "$t" --prompt "$prompt" --decode "$decode" || status=1
    run "llama.cpp $g, $t thread(s)" "$out/llama_cpp.jsonl" node "$root/bench/cpu_peer/llama_cpp_bench.mjs" \
      --model "$model/model-$g.gguf" --weights "$w" --threads "$t" --prompt "$prompt" --decode "$decode" || status=1
  done
done
python3 "$root/bench/cpu_bench_table.py" "$out" | tee "$out/table.md"
exit $status
