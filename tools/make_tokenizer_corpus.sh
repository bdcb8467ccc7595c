#!/usr/bin/env bash
# Regenerates tests/data/tokenizer-corpus/{qwen3,llama3}.json: the corpus from
# gen_tokenizer_corpus.py with the peer's ids (@lenml/tokenizers, see tokenizer_peer.js).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
[ -d "$root/.cache/peer/node_modules/@lenml/tokenizers" ] || npm install --prefix "$root/.cache/peer" @lenml/tokenizers
mkdir -p "$root/tests/data/tokenizer-corpus"
tmp="$(mktemp)"
python3 "$root/tools/gen_tokenizer_corpus.py" > "$tmp"
for m in qwen3 llama3; do
  node "$root/tools/tokenizer_peer.js" encode "$root/.cache/testdata/$m" "$tmp" "$root/tests/data/tokenizer-corpus/$m.json"
done
rm -f "$tmp"
# Where the peer is known to differ from HF, HF wins: merge the recorded overrides.
python3 - "$root/tests/data/tokenizer-corpus" <<'PY'
import json, sys
d = sys.argv[1]
over = json.load(open(f"{d}/hf_overrides.json", encoding="utf-8"))
for m in ("qwen3", "llama3"):
    corpus = json.load(open(f"{d}/{m}.json", encoding="utf-8"))
    for e in corpus:
        o = over.get(m, {}).get(e["text"])
        if o:
            e["hf_ids"], e["note"] = o["hf_ids"], o["note"]
    with open(f"{d}/{m}.json", "w", encoding="utf-8") as f:
        f.write("[\n" + ",\n".join(json.dumps(e, ensure_ascii=False) for e in corpus) + "\n]\n")  # one entry a line
PY
