#!/usr/bin/python3
"""Train the shapes demo model (MiniCPM-V 2.6 architecture, tiny) on the CPU and write it in
the Hugging Face layout the engine loads (config.json, preprocessor_config.json, tokenizer files,
model.safetensors in F32).

  OMP_NUM_THREADS=1 /usr/bin/python3 tools/shapes/train.py --out /tmp/shapes-stage1 --vision-only 1 \
      --batch 24 --warmup 30 --minutes 12 --holdout 0
  OMP_NUM_THREADS=1 /usr/bin/python3 tools/shapes/train.py --out /tmp/shapes-final \
      --init-from /tmp/shapes-stage1 --seed 1235 --warmup 50 --minutes 36

Defaults are those of stage 2. Fixed seeds; one thread; progress is printed. See docs/demo-model.md.
"""
import argparse
import json
import os
import shutil
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shapes as S  # noqa: E402

TRAIN_SEED = 1234      # pictures for training
HOLDOUT_SEED = 777     # quick check at the end of training (evaluate.py uses yet another seed)


def make_configs(a):
    ref_cfg = json.load(open(os.path.join(S.REF_DIR, "config.json")))
    cfg = dict(ref_cfg)
    cfg.update({
        "hidden_size": a.hidden,
        "intermediate_size": a.inter,
        "num_attention_heads": a.heads,
        "num_hidden_layers": a.layers,
        "num_key_value_heads": a.kv_heads,
        "torch_dtype": "float32",
        "image_size": a.scale_resolution,
        "query_num": a.query_num,
        "vision_config": {
            "hidden_size": a.v_hidden,
            "image_size": a.v_image_size,
            "intermediate_size": a.v_inter,
            "model_type": "siglip",
            "num_attention_heads": a.v_heads,
            "num_hidden_layers": a.v_layers,
            "patch_size": 14,
        },
    })
    pre = json.load(open(os.path.join(S.REF_DIR, "preprocessor_config.json")))
    pre.update({"scale_resolution": a.scale_resolution, "image_feature_size": a.query_num})
    return cfg, pre


def write_model_dir(out, cfg, pre, model):
    os.makedirs(out, exist_ok=True)
    for f in ["tokenizer.json", "tokenizer_config.json", "generation_config.json"]:
        shutil.copyfile(os.path.join(S.REF_DIR, f), os.path.join(out, f))
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
        f.write("\n")
    with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
        json.dump(pre, f, indent=1)
        f.write("\n")
    S.write_safetensors(os.path.join(out, "model.safetensors"), model.hf_state())


def aux_targets(shapes):
    """Labels for the auxiliary heads: count-1, colour (4 = mixed), kind (3 = mixed)."""
    kinds = {s[0] for s in shapes}
    cols = {s[1] for s in shapes}
    return (len(shapes) - 1, S.COLOUR_NAMES.index(shapes[0][1]) if len(cols) == 1 else 4,
            S.KINDS.index(shapes[0][0]) if len(kinds) == 1 else 3)


def patch_labels(img_size, ov_size, shapes, patch=14):
    """Per-patch labels of the overview (training-only dense signal for kind and count):
    kind[i] = 0 background or 1+kind of the shape covering most of patch i (4x4 sample points
    per patch, true shape outline), centre[i] = 1 at the patch holding a shape's centre."""
    (w, h), (ow, oh) = img_size, ov_size
    gw, gh = ow // patch, oh // patch
    sx, sy = ow / w, oh / h
    sub = (np.arange(4) + 0.5) / 4 * patch
    Y = ((np.arange(gh)[:, None] * patch + sub[None, :]) / sy)[:, None, :, None]  # [gh, 1, 4, 1]
    X = ((np.arange(gw)[:, None] * patch + sub[None, :]) / sx)[None, :, None, :]  # [1, gw, 1, 4]
    kind = np.zeros((gh, gw), dtype=np.int64)
    centre = np.zeros((gh, gw), dtype=np.int64)
    best = np.zeros((gh, gw))
    for k, _, (x0, y0, x1, y1) in shapes:
        s = x1 - x0
        cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
        if k == "circle":
            inside = (X - cx) ** 2 + (Y - cy) ** 2 <= (s / 2.0) ** 2
        elif k == "square":
            inside = (X >= x0) & (X < x1) & (Y >= y0) & (Y < y1)
        else:
            inside = (Y >= y0) & (Y < y1) & (np.abs(X - cx) <= (Y - y0) / 2.0)
        cov = inside.mean(axis=(2, 3))
        upd = (cov > best) & (cov > 0)
        kind[upd] = 1 + S.KINDS.index(k)
        best = np.maximum(best, cov)
        centre[min(gh - 1, int(cy * sy / patch)), min(gw - 1, int(cx * sx / patch))] = 1
    return np.stack([kind.reshape(-1), centre.reshape(-1)])


def build_batch(pipe, rng, n_pictures):
    """Pieces of all pictures, and one training sequence per (picture, valid question)."""
    pieces, seqs, aux = [], [], []
    for _ in range(n_pictures):
        img, shapes = S.make_picture(rng)
        pxs, grid = pipe.prepare(img)
        first = len(pieces)
        aux.append((first,) + aux_targets(shapes) +
                   (patch_labels(img.size, (pxs[0].shape[2], pxs[0].shape[1]), shapes),))
        pieces.extend(pxs)
        for q, ans in S.valid_questions(shapes):
            ids = pipe.prompt_ids(grid, q)
            tgt = pipe.tok.encode(ans) + [pipe.im_end]
            seqs.append((ids, tgt, first, len(pxs)))
    return pieces, seqs, aux


def build_overview_batch(pipe, rng, n_pictures):
    """Stage 1 (--vision-only): the overviews only, with the auxiliary labels."""
    c = pipe.cfg
    pieces, aux = [], []
    for i in range(n_pictures):
        img, shapes = S.make_picture(rng)
        grid = S.get_sliced_grid(img.size, c.max_slice_nums, c.scale_resolution)
        ov = img.resize(S.find_best_resize(img.size, c.scale_resolution, c.patch, allow_upscale=grid is None),
                        resample=S.Image.BICUBIC)
        px = S.normalize(ov)
        aux.append((i,) + aux_targets(shapes) + (patch_labels(img.size, ov.size, shapes),))
        pieces.append(px)
    return pieces, aux


class AuxHeads(torch.nn.Module):
    """Training-only help: predict count / colour / kind straight from the resampler output of
    the overview, so the vision tower gets a direct signal early. Not part of the checkpoint."""

    def __init__(self, qn, d):
        super().__init__()
        self.lin = torch.nn.Linear(qn * d, 3 + 5 + 4)

    def forward(self, vis_overview, aux):
        o = self.lin(vis_overview.reshape(vis_overview.shape[0], -1))
        t = torch.tensor([a[1:4] for a in aux], dtype=torch.long)
        return (F.cross_entropy(o[:, :3], t[:, 0]) + F.cross_entropy(o[:, 3:8], t[:, 1]) +
                F.cross_entropy(o[:, 8:], t[:, 2]))


class DenseHead(torch.nn.Module):
    """Training-only: per-patch labels of the overview from the tower output: the kind of the
    shape covering the patch (or background), and whether the patch holds a shape's centre."""

    def __init__(self, d):
        super().__init__()
        self.lin = torch.nn.Linear(d, 4 + 2)
        self.register_buffer("wc", torch.tensor([1.0, 10.0]))

    def forward(self, vit_ov, aux):
        logits, kinds, centres = [], [], []
        for b, a in enumerate(aux):
            lab = torch.from_numpy(a[4])
            logits.append(self.lin(vit_ov[b, :lab.shape[1]]))
            kinds.append(lab[0])
            centres.append(lab[1])
        lg = torch.cat(logits)
        return F.cross_entropy(lg[:, :4], torch.cat(kinds)) + F.cross_entropy(lg[:, 4:], torch.cat(centres), weight=self.wc)


def wide_init(model, seed):
    """Start the tower and resampler attention at unit-variance scale (std 1/sqrt(fan_in)), random
    queries and a stronger position table, so attention is not uniform at the start (with the
    0.02 init everywhere the tower learned shape kinds far too slowly)."""
    g = torch.Generator().manual_seed(seed + 1)
    c = model.cfg
    with torch.no_grad():
        for l in model.vlayers:
            for n in ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]:
                w = getattr(l, n).weight
                w.copy_(torch.randn(w.shape, generator=g) / w.shape[1] ** 0.5)
        for w in [model.in_proj_weight, model.kv_proj.weight, model.out_proj.weight]:
            w.copy_(torch.randn(w.shape, generator=g) / w.shape[1] ** 0.5)
        model.query.copy_(torch.randn(model.query.shape, generator=g))
        pe = S.sincos_2d(c.v_hidden, c.P, c.P).reshape(c.P * c.P, c.v_hidden)
        model.position_embedding.weight.copy_(pe * 0.5)


def forward_loss(pipe, model, pieces, seqs, aux=None, aux_heads=None, dense=None, slice_grad=True):
    Qn, D = pipe.cfg.query_num, pipe.cfg.hidden
    aux_loss = None
    if aux is not None and (dense is not None or not slice_grad):
        ov_idx = [a[0] for a in aux]
        ov_set = set(ov_idx)
        sl_idx = [i for i in range(len(pieces)) if i not in ov_set]
        vis_ov, vit_ov = model.encode_pieces([pieces[i] for i in ov_idx], return_vit=True)
        if sl_idx:
            if slice_grad:
                vis_sl = model.encode_pieces([pieces[i] for i in sl_idx])
            else:
                with torch.no_grad():
                    vis_sl = model.encode_pieces([pieces[i] for i in sl_idx])
        rows = [None] * len(pieces)
        for k, i in enumerate(ov_idx):
            rows[i] = vis_ov[k]
        for k, i in enumerate(sl_idx):
            rows[i] = vis_sl[k]
        vis = torch.stack(rows)
        if aux_heads is not None:
            aux_loss = aux_heads(vis_ov, aux)
        if dense is not None:
            d = dense(vit_ov, aux)
            aux_loss = d if aux_loss is None else aux_loss + d
    else:
        vis = model.encode_pieces(pieces)  # [n_pieces, Qn, D]
        if aux_heads is not None:
            aux_loss = aux_heads(vis[torch.tensor([a[0] for a in aux])], aux)
    T = max(len(i) + len(t) for i, t, _, _ in seqs)
    embs, labels = [], []
    pad = pipe.tok.added["<|endoftext|>"]
    for ids, tgt, first, n in seqs:
        full = ids + tgt
        x = torch.tensor(full + [pad] * (T - len(full)), dtype=torch.long)
        embs.append(model.embed(x, vis[first:first + n].reshape(-1, D)))
        lab = [-100] * (len(ids) - 1) + tgt + [-100] * (T - len(full) + 1)
        labels.append(lab)
    emb = torch.stack(embs)
    labels = torch.tensor(labels, dtype=torch.long)
    h = model.llm(emb, hidden_only=True)
    sel = labels != -100  # lm_head only where there is a label
    logits = model.lm_head(model._rms(h[sel], model.norm, pipe.cfg.rms_eps))
    loss = F.cross_entropy(logits, labels[sel])
    # first answer token right?
    firsts = torch.tensor([len(i) - 1 for i, _, _, _ in seqs])
    hf = h[torch.arange(len(seqs)), firsts]
    pred = model.lm_head(model._rms(hf, model.norm, pipe.cfg.rms_eps)).argmax(-1)
    gold = labels[torch.arange(len(seqs)), firsts]
    acc = (pred == gold).float().mean().item()
    return loss, acc, aux_loss


def holdout(pipe, n, seed):
    rng = np.random.RandomState(seed)
    right = {q: [0, 0] for q in S.QUESTIONS}
    for _ in range(n):
        img, shapes = S.make_picture(rng)
        qs = S.valid_questions(shapes)
        q, ans = qs[rng.randint(len(qs))]
        got = pipe.answer(img, q)
        right[q][0] += int(got == ans)
        right[q][1] += 1
    tot = sum(r[0] for r in right.values()), sum(r[1] for r in right.values())
    return tot[0] / max(1, tot[1]), {q: "%d/%d" % tuple(r) for q, r in right.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(S.REPO, "models", "shapes"))
    ap.add_argument("--minutes", type=float, default=36.0)
    ap.add_argument("--max-steps", type=int, default=100000)
    ap.add_argument("--batch", type=int, default=12, help="pictures per step (all their valid questions)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--seed", type=int, default=TRAIN_SEED)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--inter", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--v-hidden", type=int, default=64)
    ap.add_argument("--v-inter", type=int, default=192)
    ap.add_argument("--v-heads", type=int, default=4)
    ap.add_argument("--v-layers", type=int, default=3)
    ap.add_argument("--v-image-size", type=int, default=448)
    ap.add_argument("--scale-resolution", type=int, default=112)
    ap.add_argument("--query-num", type=int, default=16)
    ap.add_argument("--save-every", type=float, default=5.0, help="minutes between checkpoints")
    ap.add_argument("--holdout", type=int, default=300)
    ap.add_argument("--dense-aux", type=int, default=1, help="training-only per-patch head on the overview")
    ap.add_argument("--slice-grad", type=int, default=0, help="backpropagate into the tower through slices too")
    ap.add_argument("--init-from", default=None, help="continue from this model folder (same config)")
    ap.add_argument("--aux", type=float, default=1.0, help="weight of the training-only auxiliary heads")
    ap.add_argument("--wide-init", type=int, default=1, help="unit-scale init of tower and resampler (see wide_init)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--vision-only", type=int, default=0,
                    help="stage 1: train tower + resampler on the overviews with the auxiliary heads only")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    cfg, pre = make_configs(a)
    pipe = S.Pipeline(cfg_json=cfg, pre_json=pre, tok_path=os.path.join(S.REF_DIR, "tokenizer.json"))
    model = pipe.model
    model.init_weights(a.seed)
    if a.wide_init:
        wide_init(model, a.seed)
    if a.init_from:
        model.load_hf(S.read_safetensors(os.path.join(a.init_from, "model.safetensors")))
        print("continuing from %s" % a.init_from, flush=True)
    n_params = sum(p.numel() for p in model.parameters())
    print("parameters: %d (%.2f MB as F32)" % (n_params, n_params * 4 / 1e6), flush=True)
    assert 0 not in pipe.prompt_ids([2, 2], S.Q_COUNT), "prompt contains token id 0"

    aux_heads = AuxHeads(a.query_num, a.hidden) if a.aux > 0 else None
    dense = DenseHead(a.v_hidden) if a.dense_aux else None
    heads_file = os.path.join(a.init_from, "train_heads.pt") if a.init_from else None
    if heads_file and os.path.exists(heads_file):
        st = torch.load(heads_file)
        if aux_heads is not None and "aux" in st:
            aux_heads.load_state_dict(st["aux"])
        if dense is not None and "dense" in st:
            dense.load_state_dict(st["dense"])
        print("auxiliary heads from %s" % heads_file, flush=True)
    named = list(model.named_parameters()) + (list(aux_heads.named_parameters()) if aux_heads else []) + \
        (list(dense.named_parameters()) if dense else [])
    decay = [p for n, p in named if p.dim() >= 2 and "embed" not in n]
    no_decay = [p for n, p in named if not (p.dim() >= 2 and "embed" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.98))
    rng = np.random.RandomState(a.seed)
    budget = a.minutes * 60.0
    t0 = time.time()
    last_save = t0
    step = 0
    ema_loss, ema_acc, ema_aux = None, None, None
    pictures = 0
    while step < a.max_steps:
        el = time.time() - t0
        if el > budget:
            break
        # lr: warmup, then cosine over the time budget (down to 5 %)
        frac = min(1.0, el / budget)
        lr = a.lr * min(1.0, (step + 1) / a.warmup) * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        pictures += a.batch
        model.train()
        if a.vision_only:
            pieces, aux = build_overview_batch(pipe, rng, a.batch)
            vis_ov, vit_ov = model.encode_pieces(pieces, return_vit=True)
            loss = aux_heads(vis_ov, aux) + dense(vit_ov, aux)
            aux_loss, acc = None, 0.0
        else:
            pieces, seqs, aux = build_batch(pipe, rng, a.batch)
            loss, acc, aux_loss = forward_loss(pipe, model, pieces, seqs, aux, aux_heads, dense, bool(a.slice_grad))
        opt.zero_grad(set_to_none=True)
        (loss + a.aux * aux_loss if aux_loss is not None else loss).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        ema_loss = loss.item() if ema_loss is None else 0.95 * ema_loss + 0.05 * loss.item()
        ema_acc = acc if ema_acc is None else 0.95 * ema_acc + 0.05 * acc
        if aux_loss is not None:
            ema_aux = aux_loss.item() if ema_aux is None else 0.95 * ema_aux + 0.05 * aux_loss.item()
        if step % 20 == 0 or step == 1:
            print("step %5d  %6.1f min  pictures %6d  lr %.2e  loss %.4f  first-token acc %.3f  aux %.3f" %
                  (step, (time.time() - t0) / 60, pictures, lr, ema_loss, ema_acc, ema_aux or 0.0), flush=True)
        if time.time() - last_save > a.save_every * 60:
            write_model_dir(a.out, cfg, pre, model)
            last_save = time.time()
            print("  saved %s" % a.out, flush=True)
    model.eval()
    write_model_dir(a.out, cfg, pre, model)
    if a.vision_only:
        torch.save({"aux": aux_heads.state_dict(), "dense": dense.state_dict()}, os.path.join(a.out, "train_heads.pt"))
    print("done: %d steps, %d pictures, %.1f min; saved %s" % (step, pictures, (time.time() - t0) / 60, a.out),
          flush=True)
    if a.holdout:
        acc, per = holdout(pipe, a.holdout, HOLDOUT_SEED)
        print("holdout (PyTorch, %d pictures, seed %d): %.3f  %s" % (a.holdout, HOLDOUT_SEED, acc, per), flush=True)


if __name__ == "__main__":
    main()
