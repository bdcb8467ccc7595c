#!/usr/bin/python3
"""Compare the C++ engine with this folder's PyTorch model on a few generated pictures:
`omnid dump --image --text` must give the same prompt ids, slices and pixels, and vision embeds
and logits within 1e-4 or 1e-5 of their largest magnitude, whichever is larger.

  OMP_NUM_THREADS=1 /usr/bin/python3 tools/shapes/compare_engine.py --omnid build-shapes/bin/omnid
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shapes as S  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(S.REPO, "models", "shapes"))
    ap.add_argument("--omnid", required=True)
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--seed", type=int, default=4242)
    a = ap.parse_args()
    torch.set_num_threads(1)
    pipe = S.Pipeline(model_dir=a.model)
    rng = np.random.RandomState(a.seed)
    tmp = tempfile.mkdtemp(prefix="shapes_cmp_")
    worst_v, worst_l, ok = 0.0, 0.0, True
    for i in range(a.n):
        img, shapes = S.make_picture(rng)
        qs = S.valid_questions(shapes)
        q, _ = qs[rng.randint(len(qs))]
        png = os.path.join(tmp, "p%d.png" % i)
        img.save(png)
        out = os.path.join(tmp, "d%d" % i)
        os.makedirs(out, exist_ok=True)
        r = subprocess.run([a.omnid, "dump", "--model", a.model, "--image", png, "--text", q, "--out", out],
                           capture_output=True, text=True, env=dict(os.environ, OMNI_LOG_LEVEL="warn"))
        if r.returncode != 0:
            print("dump failed:", r.stderr[-500:])
            return 1
        pxs, grid = pipe.prepare(img)
        ids = pipe.prompt_ids(grid, q)
        eids = json.load(open(os.path.join(out, "prompt.json")))["ids"]
        same_ids = ids == eids
        px_err = 0.0
        for k, p in enumerate(pxs):
            e = np.load(os.path.join(out, "pixels_%d.npy" % k))
            px_err = max(px_err, float(np.abs(e - p.numpy()).max()) if e.shape == p.shape else float("inf"))
        with torch.no_grad():
            vis = pipe.model.encode_pieces(pxs)
            ev = np.load(os.path.join(out, "vision_embeds.npy"))
            v_err = float(np.abs(ev - vis.numpy()).max()) if ev.shape == tuple(vis.shape) else float("inf")
            logits = pipe.model.llm(pipe.model.embed(torch.tensor(ids), vis.reshape(-1, pipe.cfg.hidden))[None])[0]
            el = np.load(os.path.join(out, "logits.npy"))
            l_err = float(np.abs(el - logits.numpy()).max()) if el.shape == tuple(logits.shape) else float("inf")
        print("%s %dx%d grid %s %-28s ids equal %s  pixels %.1e  vision %.2e  logits %.2e" %
              (os.path.basename(png), img.size[0], img.size[1], grid, q, same_ids, px_err, v_err, l_err))
        worst_v, worst_l = max(worst_v, v_err), max(worst_l, l_err)
        # float32 rounding grows with the values' size: 1e-4, or 1e-5 of the largest |value|
        v_tol = max(1e-4, 1e-5 * float(vis.abs().max()))
        l_tol = max(1e-4, 1e-5 * float(logits.abs().max()))
        print("    tolerance: vision %.2e (max |value| %.1f), logits %.2e (max |value| %.1f)" %
              (v_tol, float(vis.abs().max()), l_tol, float(logits.abs().max())))
        ok &= same_ids and px_err == 0.0 and v_err <= v_tol and l_err <= l_tol
    print("worst vision %.2e, worst logits %.2e: %s" % (worst_v, worst_l, "OK" if ok else "MISMATCH"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
