#!/usr/bin/python3
"""Evaluate the shapes demo model through the C++ engine (`omnid run --greedy`) and the
PyTorch implementation on fresh pictures from a generator seed never used in training.

  OMP_NUM_THREADS=1 /usr/bin/python3 tools/shapes/evaluate.py --omnid build/bin/omnid --n 300

Each picture gets one of its valid questions (picked at random). Prints accuracy of both and
their agreement. --write-cases DIR writes the pictures with expected answers as DIR/cases.json
(used by tests/shapes/test_shapes_demo.cpp).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shapes as S  # noqa: E402

EVAL_SEED = 20260707      # never used for training (train.py: 1234, holdout 777)
CASES_SEED = 31337        # pictures committed under tests/data/shapes


def run_engine(omnid, model_dir, png, question, max_tokens):
    env = dict(os.environ, OMNI_LOG_LEVEL="warn")
    r = subprocess.run([omnid, "run", "--model", model_dir, "--image", png, "--greedy", "--max-tokens",
                        str(max_tokens), question], capture_output=True, text=True, env=env, timeout=120)
    if r.returncode != 0:
        return "<error rc=%d: %s>" % (r.returncode, r.stderr.strip()[-200:])
    return r.stdout.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(S.REPO, "models", "shapes"))
    ap.add_argument("--omnid", default=None, help="omnid binary; leave out for PyTorch only")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--seed", type=int, default=EVAL_SEED)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--write-cases", default=None, help="folder for PNGs + cases.json (uses --seed)")
    ap.add_argument("--show-errors", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    pipe = S.Pipeline(model_dir=a.model)
    pipe.model.eval()
    rng = np.random.RandomState(a.seed)
    tmp = tempfile.mkdtemp(prefix="shapes_eval_")
    out_dir = a.write_cases or tmp
    os.makedirs(out_dir, exist_ok=True)
    stats = {q: [0, 0, 0, 0] for q in S.QUESTIONS}  # n, torch right, engine right, agree
    cases = []
    t0 = time.time()
    for i in range(a.n):
        img, shapes = S.make_picture(rng)
        qs = S.valid_questions(shapes)
        q, ans = qs[rng.randint(len(qs))]
        name = "shape_%03d.png" % i
        png = os.path.join(out_dir, name)
        img.save(png)
        pt = pipe.answer(img, q)
        st = stats[q]
        st[0] += 1
        st[1] += int(pt == ans)
        eng = None
        if a.omnid:
            eng = run_engine(a.omnid, a.model, png, q, a.max_tokens)
            st[2] += int(eng == ans)
            st[3] += int(eng == pt)
        if a.show_errors and (pt != ans or (eng is not None and eng != ans)):
            print("  %s %dx%d %s | %r expected %r, pytorch %r, engine %r" %
                  (name, img.size[0], img.size[1], [s[:2] for s in shapes], q, ans, pt, eng), flush=True)
        cases.append({"image": name, "question": q, "answer": ans, "pytorch": pt, "engine": eng,
                      "width": img.size[0], "height": img.size[1]})
        if (i + 1) % 50 == 0:
            print("%d/%d pictures, %.0f s" % (i + 1, a.n, time.time() - t0), flush=True)
    if a.write_cases:
        with open(os.path.join(a.write_cases, "cases.json"), "w") as f:
            json.dump(cases, f, indent=1)
            f.write("\n")
    n = sum(s[0] for s in stats.values())
    print("pictures: %d (seed %d), model %s" % (n, a.seed, a.model))
    for q, s in stats.items():
        line = "  %-28s n=%3d  pytorch %5.1f %%" % (q, s[0], 100.0 * s[1] / max(1, s[0]))
        if a.omnid:
            line += "  engine %5.1f %%  agree %5.1f %%" % (100.0 * s[2] / max(1, s[0]), 100.0 * s[3] / max(1, s[0]))
        print(line)
    line = "  %-28s n=%3d  pytorch %5.1f %%" % ("all", n, 100.0 * sum(s[1] for s in stats.values()) / n)
    if a.omnid:
        line += "  engine %5.1f %%  agree %5.1f %%" % (100.0 * sum(s[2] for s in stats.values()) / n,
                                                       100.0 * sum(s[3] for s in stats.values()) / n)
    print(line)


if __name__ == "__main__":
    main()
