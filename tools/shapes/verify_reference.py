#!/usr/bin/python3
"""Check this folder's PyTorch MiniCPM-V 2.6 implementation against the reference goldens of
tests/data/minicpmv26-tiny (slicing sizes, pixels, prompt ids, vision embeds, logits).

  OMP_NUM_THREADS=1 /usr/bin/python3 tools/shapes/verify_reference.py
"""
import json
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shapes as S  # noqa: E402


def main():
    torch.set_num_threads(1)
    pipe = S.Pipeline(model_dir=S.REF_DIR)
    ok = True
    for case in ["case_small", "case_wide"]:
        d = os.path.join(S.REF_DIR, case)
        img = Image.open(os.path.join(d, "image.png"))
        q = open(os.path.join(d, "question.txt")).read()
        pxs, grid = pipe.prepare(img)
        sl = json.load(open(os.path.join(d, "golden_slices.json")))
        sizes = [[p.shape[2], p.shape[1]] for p in pxs]
        print(case, "grid", grid, sl["grid"], "sizes", sizes == sl["sizes_wh"])
        ok &= (grid == sl["grid"]) and sizes == sl["sizes_wh"]
        for i, p in enumerate(pxs):
            g = np.load(os.path.join(d, "golden_pixels_%d.npy" % i))
            mine = p.numpy()
            if g.shape != mine.shape:  # reshape_by_patch layout [3, 14, L*14]
                mine = S.to_patches(p, 14).reshape(-1, 3, 14, 14).permute(1, 2, 0, 3).reshape(3, 14, -1).numpy()
            err = float(np.abs(g - mine).max())
            print("  pixels %d max err %.2e" % (i, err))
            ok &= err < 1e-6
        gp = json.load(open(os.path.join(d, "golden_prompt.json")))
        ids = pipe.prompt_ids(grid, q)
        print("  prompt ids equal:", ids == gp["ids"], "text equal:",
              S.chat_prompt(S.placeholder(grid, pipe.cfg.query_num) + "\n" + q) == gp["text"])
        ok &= ids == gp["ids"]
        with torch.no_grad():
            vis = pipe.model.encode_pieces(pxs)
            gv = np.load(os.path.join(d, "golden_vision_embeds.npy"))
            err = float(np.abs(vis.numpy().reshape(gv.shape) - gv).max())
            print("  vision embeds max err %.2e (golden max |x| %.2f)" % (err, np.abs(gv).max()))
            ok &= err < 2e-3
            t = torch.tensor(gp["ids"], dtype=torch.long)
            logits = pipe.model.llm(pipe.model.embed(t, vis.reshape(-1, pipe.cfg.hidden))[None])[0]
            gl = np.load(os.path.join(d, "golden_logits.npy"))
            mine = logits.numpy()
            if gl.shape != mine.shape:
                mine = mine[-gl.shape[0]:] if gl.ndim == 2 else mine[-1]
            err = float(np.abs(mine - gl).max())
            print("  logits %s max err %.2e (golden max |x| %.2f)" % (gl.shape, err, np.abs(gl).max()))
            ok &= err < 2e-3
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
