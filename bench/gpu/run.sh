#!/usr/bin/env bash
# The ONE script for a lent GPU machine (docs/cuda.md). Prepared here by bench/gpu/prepare.sh,
# run there with carry ["build-gpu"]:  bash bench/gpu/run.sh [--quick]
# Steps (about 5 minutes on an H100, all bounded by timeouts):
#   1. machine facts (nvidia-smi, libraries the binaries cannot find)
#   2. tests/cuda: every CUDA op and whole tiny models against the CPU reference
#   3. bench_decode: MiniCPM-V 2.6 shapes (Qwen2-7B decoder, SigLIP-400M) on our kernels
#   4. the transformers baseline on the same shapes, in the same call
#   5. a short table (last lines of the output); logs under $OUT
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=${OUT:-/tmp/omni-gpu-out}
mkdir -p "$OUT"
QUICK=""
LAYERS=28
if [ "${1:-}" = "--quick" ]; then QUICK="--quick"; LAYERS=4; fi
B=$ROOT/build-gpu
if [ ! -x "$B/bin/test_cuda" ]; then
  echo "run.sh: build-gpu/bin/test_cuda missing: run bench/gpu/prepare.sh here and carry build-gpu" >&2
  exit 2
fi

CARRY=$B/lib-carry
if [ -f "$B/lib-carry.tar.xz" ]; then
  mkdir -p /tmp/omni-carry && tar -C /tmp/omni-carry -xJf "$B/lib-carry.tar.xz" && CARRY=/tmp/omni-carry/lib-carry
fi

# The test binary looks for tests/data where it was built (/work/main): point that at us.
if [ ! -e /work/main/tests/data ]; then mkdir -p /work && ln -sfn "$ROOT" /work/main; fi

# Libraries: carried ones first, then the toolkit's, then torch's NVIDIA wheels.
LIBS=$CARRY:/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib
WHEELS=$(python3 - <<'PY' 2>/dev/null
import glob, os
try:
    import nvidia
    print(":".join(sorted({os.path.dirname(p) for d in nvidia.__path__ for p in glob.glob(d + "/*/lib/*.so*")})))
except Exception:
    pass
PY
)
export LD_LIBRARY_PATH=$LIBS${WHEELS:+:$WHEELS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export OMNI_LOG_LEVEL=warn

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv 2>&1 | tee "$OUT/machine.txt"
nvcc --version 2>/dev/null | tail -1 | tee -a "$OUT/machine.txt"
for b in "$B"/bin/*; do
  if ldd "$b" | grep "not found"; then echo "run.sh: $b misses the libraries above" | tee -a "$OUT/machine.txt"; fi
done

echo "== tests/cuda (CUDA vs CPU)"
timeout 180 "$B/bin/test_cuda" -r compact 2>&1 | tee "$OUT/test_cuda.log"
TEST_RC=${PIPESTATUS[0]}
if grep -q "no CUDA device" "$OUT/test_cuda.log"; then
  echo "run.sh: the CUDA tests SKIPPED (cuda_device_count() == 0): nothing was checked" | tee -a "$OUT/machine.txt"
  TEST_RC=3
fi
echo "test_cuda exit code $TEST_RC"

echo "== bench_decode (our kernels)"
timeout 240 "$B/bin/bench_decode" $QUICK 2>&1 | tee "$OUT/bench.log"
BENCH_RC=${PIPESTATUS[0]}

echo "== transformers baseline"
PYTHONUNBUFFERED=1 timeout 240 python3 "$ROOT/bench/gpu/baseline_transformers.py" "$LAYERS" 2>&1 | tee "$OUT/baseline.log"
BASE_RC=${PIPESTATUS[0]}

echo "== summary (test rc $TEST_RC, bench rc $BENCH_RC, baseline rc $BASE_RC)"
python3 - "$OUT/bench.log" "$OUT/baseline.log" <<'PY' | tee "$OUT/summary.txt"
import json, sys
def last_json(path):
    try:
        for line in reversed(open(path).read().splitlines()):
            if line.startswith("{"):
                return json.loads(line)
    except Exception:
        pass
    return {}
ours, base = last_json(sys.argv[1]), last_json(sys.argv[2])
print(f"device: {ours.get('device') or base.get('device')}  layers: {ours.get('layers')}  "
      f"copy {ours.get('copy_gbs', float('nan')):.0f} GB/s")
rows = [("prefill 512 (tok/s)", "prefill_tok_s"), ("decode b1 (tok/s)", "decode_tok_s"),
        ("decode b16 (tok/s)", "batch_tok_s"), ("vision 10x448 (ms)", "vision_ms")]
print(f"{'':22s}{'omnid':>12s}{'transformers':>14s}")
for name, key in rows:
    f = lambda d: f"{d[key]:.1f}" if key in d else "-"
    print(f"{name:22s}{f(ours):>12s}{f(base):>14s}")
if "roofline_tok_s" in ours:
    print(f"decode b1 roofline (weights / copy bandwidth): {ours['roofline_tok_s']:.1f} tok/s, "
          f"omnid at {100 * ours['decode_tok_s'] / ours['roofline_tok_s']:.0f}%")
PY
exit $(( TEST_RC != 0 || BENCH_RC != 0 ))
