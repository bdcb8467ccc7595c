#!/usr/bin/env python3
"""Renders bench/run_cpu_bench.sh's JSON lines (OUT/membw.jsonl, omnid.jsonl, llama_cpp.jsonl)
as a markdown table, omnid and llama.cpp side by side per weight type and thread count.

    python3 bench/cpu_bench_table.py OUT

A decode's share of a bandwidth is weight bytes x decode tokens/s / bandwidth at the same
thread count: a CPU decode reads every weight once per token (tied embeddings: the one
table serves as lm_head), so 100 % of read bandwidth is the ceiling. Copy bandwidth counts
bytes copied (each read and written once), so a read-only stream may exceed 100 % of it.
Weight bytes: omnid's are what its cpu device charged for the model, llama.cpp's its
tensors' size (llama_model_size). "Same greedy tokens": how many of the first 16 greedy
picks match, from the first on (a check that both ran the same weights; near-tied logits
may part them where rounding differs).
"""
import json
import pathlib
import sys

WEIGHT_ORDER = {"f32": 0, "bf16": 1, "int8": 2}


def lines(path):
    if not path.is_file():
        return []
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip().startswith("{")]


def gib(n):
    return f"{n / 2**30:.2f}"


def pct(part, whole):
    return f"{100 * part / whole:.0f} %" if whole else "-"


def agreement(o, l):
    """How many of the first greedy picks the two engines share before they part."""
    if not o or not l or "first_tokens" not in o or "first_tokens" not in l:
        return "-"
    a, b = o["first_tokens"], l["first_tokens"]
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return f"{n} of {min(len(a), len(b))}"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = pathlib.Path(sys.argv[1])
    bw = {m["threads"]: m for m in lines(out / "membw.jsonl")}
    runs = {}
    for r in lines(out / "omnid.jsonl") + lines(out / "llama_cpp.jsonl"):
        runs[(r["weights"], r["threads"], r["engine"])] = r
    keys = sorted({(w, t) for w, t, _ in runs}, key=lambda k: (WEIGHT_ORDER.get(k[0], 9), k[1]))

    print("Memory bandwidth (bench_membw, best of its reps):\n")
    print("| threads | copy GB/s | read GB/s |\n|---|---|---|")
    for t in sorted(bw):
        print(f"| {t} | {bw[t]['copy_bytes_s'] / 1e9:.1f} | {bw[t]['read_bytes_s'] / 1e9:.1f} |")
    first = next(iter(runs.values()), {})
    print(f"\nPrefill {first.get('prompt', '?')} tokens, decode {first.get('decode', '?')} tokens; "
          "each cell is omnid / llama.cpp.\n")
    print("| weights | threads | weight GiB | load s | prefill tok/s | decode tok/s | peak RSS GiB "
          "| decode share of copy BW | of read BW | same greedy tokens |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for w, t in keys:
        o, l = runs.get((w, t, "omnid")), runs.get((w, t, "llama.cpp"))
        m = bw.get(t, {})

        def cell(fmt):
            return " / ".join(fmt(r) if r else "-" for r in (o, l))

        def share(field):
            return cell(lambda r: pct(r.get("weight_bytes", 0) * r["decode_tok_s"], m.get(field, 0)))

        weight_gib = cell(lambda r: gib(r["weight_bytes"]) if "weight_bytes" in r else "-")
        load = cell(lambda r: format(r["load_s"], ".1f"))
        prefill = cell(lambda r: format(r["prefill_tok_s"], ".0f"))
        decode = cell(lambda r: format(r["decode_tok_s"], ".1f"))
        rss = cell(lambda r: gib(r["peak_rss_bytes"]))
        print(f"| {w} | {t} | {weight_gib} | {load} | {prefill} | {decode} | {rss} "
              f"| {share('copy_bytes_s')} | {share('read_bytes_s')} | {agreement(o, l)} |")
    versions = sorted({r.get("version", "?") for r in runs.values()})
    print("\nEngines: " + "; ".join(versions) + ".")


if __name__ == "__main__":
    main()
