#!/usr/bin/python3
"""Writes tests/data/minicpmv45-video: goldens for MiniCPM-V 4.5's video path in the resampler
(daemon/model/resampler.h: resampler_temporal_embed, Resampler::forward_frames).

The reference is plain torch + numpy, written from the released remote code of
openbmb/MiniCPM-V-4_5, read in the copy the MiniCPM-V spec cites as its source S3:
repository PcOffeeP/FineTune_MLLM, folder Model/MiniCPM-VL-4.5/ at 673b2a5a:
  - resampler.py: get_1d_sincos_pos_embed_from_temporal_size (the temporal table),
    get_2d_sincos_pos_embed / get_1d_sincos_pos_embed_from_grid_new (the 2-D table),
    Resampler._set_temporal_pos_cache, Resampler.forward and Resampler.batch_attn_forward
    (taken when config batch_3d_resampler is true, as in 4.5's config.json);
  - modeling_minicpmv.py: init_resampler (num_heads = embed_dim // 128, batch_infer =
    config.batch_3d_resampler), get_vllm_embedding (all pieces of a call in one resampler batch,
    one temporal id per piece).
What the released code does, step by step, is in the comments of released_resampler below.

Inputs: the resampler.* weights of tests/data/minicpmv45-tiny (bf16, read exactly; computed in
float32 like the C++ CPU backend), and fixed random "tower outputs" (frames.npy) instead of a
vision tower run, so the goldens test the resampler alone.

Groups, in one batched call as the released code would run them: ids [0, 3, 7], [1234, 1240],
[5] and [-1] (a still picture). The tool also computes the wrong variants a reimplementation
could fall into and asserts the goldens tell them apart by far more than the test tolerance.

Run: /usr/bin/python3 tools/minicpmv45_video_reference.py   (numpy, python3-torch)
"""
import json
import os
import struct

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "tests", "data")
CKPT = os.path.join(DATA, "minicpmv45-tiny")
OUT = os.path.join(DATA, "minicpmv45-video")

GROUPS = [[0, 3, 7], [1234, 1240], [5], [-1]]
TGT_H, TGT_W = 3, 4
TABLE_IDS = [0, 1, 2, 3, 5, 7, 100, 1234, 1240, 9999, 71999, 72000, 123456, 1000000]
# tests/model/test_minicpmv45_video.cpp uses these; derived in main() from float32 vs float64.
OUTPUT_TOL = 1e-5
TABLE_TOL = 1e-6
HF_TABLE_ROWS = 72000   # Resampler(max_temporal_size=72000)


def read_safetensors(path, prefix):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        body = f.read()
    out = {}
    for name, v in header.items():
        if not name.startswith(prefix):
            continue
        a, b = v["data_offsets"]
        assert v["dtype"] == "BF16", name
        bits = np.frombuffer(body[a:b], dtype="<u2").astype(np.uint32) << 16
        out[name[len(prefix):]] = torch.from_numpy(bits.view(np.float32).reshape(v["shape"]).copy())
    return out


def sincos_1d(embed_dim, pos, dtype=np.float32, numpy_math=False):
    """The released 1-D sin-cos rows ([..., embed_dim]: sin half, then cos half), in numpy
    float32 as _set_temporal_pos_cache and get_2d_sincos_pos_embed feed it: omega = arange(D/2)
    float32 / (D/2), omega = 1 / 10000**omega, the outer product pos·omega in float32 (einsum),
    sin and cos of that float32 angle.

    numpy's float32 power, sin and cos are not the same on every machine: on AVX512_SKX builds
    (this one) power goes through SVML and differs from libm's powf in ~1 ULP of some omegas,
    which moves a row by ~1e-3 at id 72000 (an angle of 72000·omega carries 72000 times the
    error), and numpy's own SIMD sin/cos differ by up to 1 ULP. So, by default, this evaluates
    those three functions correctly rounded (in float64, then rounded to float32), as libm
    builds of numpy do and as daemon/model/resampler.cpp does; every float32 step in between is
    kept. numpy_math=True is numpy's own evaluation here, kept to measure the spread.
    dtype=float64 is the wrong variant "the table in float64"."""
    assert embed_dim % 2 == 0
    omega = np.arange(embed_dim // 2, dtype=dtype)
    omega /= embed_dim / 2.0
    if numpy_math or dtype != np.float32:
        omega = 1.0 / 10000 ** omega
    else:
        omega = np.float32(1.0) / (10000.0 ** omega.astype(np.float64)).astype(np.float32)
    out = np.einsum("...,d->...d", np.asarray(pos, dtype=dtype), omega)
    if numpy_math or dtype != np.float32:
        return np.concatenate([np.sin(out), np.cos(out)], axis=-1)
    o = out.astype(np.float64)
    return np.concatenate([np.sin(o), np.cos(o)], axis=-1).astype(np.float32)


def temporal_table(embed_dim, ids, dtype=np.float32, numpy_math=False):
    """get_1d_sincos_pos_embed_from_temporal_size: rows for positions `ids`, [M, D]."""
    return sincos_1d(embed_dim, np.asarray(ids).reshape(-1), dtype, numpy_math)


def pos_2d(embed_dim, h, w):
    """The released get_2d_sincos_pos_embed for an h × w grid, [h·w, D], numpy float32: the
    first half encodes the column (meshgrid puts w first), the second the row."""
    gw, gh = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    emb = np.concatenate([sincos_1d(embed_dim // 2, gw), sincos_1d(embed_dim // 2, gh)], axis=-1)
    return torch.from_numpy(emb.reshape(h * w, embed_dim))


class Weights:
    def __init__(self, w, dtype):
        self.D = w["query"].shape[1]
        self.heads = self.D // 128
        self.w = {k: v.to(dtype) for k, v in w.items()}
        self.dtype = dtype
        mha = torch.nn.MultiheadAttention(self.D, self.heads).to(dtype)
        with torch.no_grad():
            for n in ("in_proj_weight", "in_proj_bias"):
                getattr(mha, n).copy_(self.w["attn." + n])
            mha.out_proj.weight.copy_(self.w["attn.out_proj.weight"])
            mha.out_proj.bias.copy_(self.w["attn.out_proj.bias"])
        self.mha = mha

    def ln(self, name, x):
        return torch.nn.functional.layer_norm(x, (self.D,), self.w[name + ".weight"], self.w[name + ".bias"], 1e-6)


def released_resampler(W, frames, temporal_ids, variant="right", table_dtype=np.float32):
    """Resampler.forward(x, tgt_sizes, temporal_ids) with batch_infer on, for pieces that all
    have the grid TGT_H × TGT_W. frames: [B, L, kv_dim], one piece per frame of the groups in
    order; temporal_ids: a list of groups (the official flattening gives piece i the i-th id).
    Returns [len(groups), Q, D]."""
    B, L, _ = frames.shape
    D, dt = W.D, W.dtype
    ids = [t for g in temporal_ids for t in g]
    assert len(ids) == B
    # Every row of the table the official code would build (72000, regrown to max id + 1 by
    # the same formula) equals the row computed alone: the function is elementwise per row.
    tab = {t: torch.from_numpy(temporal_table(D, [t], table_dtype)[0]).to(dt) for t in ids if t >= 0}
    if variant == "cos_first":
        tab = {t: torch.cat([r[D // 2:], r[:D // 2]]) for t, r in tab.items()}
    x = W.ln("ln_kv", frames.to(dt) @ W.w["kv_proj.weight"].t()).permute(1, 0, 2)   # L × B × D
    q = W.ln("ln_q", W.w["query"])
    # forward: v = x; k = x + pos_2d; the temporal row of piece i (zeros for id −1) then goes
    # onto every key of that piece: k += stack(rows) (B × D broadcast over L). Values get none.
    v = x
    k = x + pos_2d(D, TGT_H, TGT_W).to(dt)[:, None, :]
    order = list(range(B))
    if variant == "reversed_ids":   # frame i gets the temporal row of the group's mirror frame
        order, s = [], 0
        for g in temporal_ids:
            order += list(range(s + len(g) - 1, s - 1, -1))
            s += len(g)
    rows = [tab[ids[order[i]]] if ids[order[i]] >= 0 else torch.zeros(D, dtype=dt) for i in range(B)]
    temporal = torch.stack(rows, dim=0)
    if variant != "no_temporal":
        k = k + temporal
        if variant == "temporal_on_values":
            v = v + temporal
    if variant == "per_frame_mean":   # one attention per frame, averaged over the group
        outs, s = [], 0
        for g in temporal_ids:
            o = torch.stack([W.mha(q[:, None], k[:, s + j:s + j + 1], v[:, s + j:s + j + 1])[0][:, 0]
                             for j in range(len(g))]).mean(0)
            outs.append(o)
            s += len(g)
        out = torch.stack(outs, dim=1)
    else:
        # batch_attn_forward: group g's keys are k[:, s:e] (L × n × D) permuted to n × L × D and
        # flattened: frame-major, and the values and the padding mask the same way. Groups are
        # padded to the longest (padding keys masked) for one batched nn.MultiheadAttention.
        def flat(t, s, e, lmajor=False):
            return t[:, s:e].reshape(-1, D) if lmajor else t[:, s:e].permute(1, 0, 2).reshape(-1, D)
        mk, mv, s = [], [], 0
        for g in temporal_ids:
            e = s + len(g)
            mk.append(flat(k, s, e, variant in ("kv_lmajor", "k_lmajor_only")))
            mv.append(flat(v, s, e, variant == "kv_lmajor"))
            s = e
        n = len(temporal_ids)
        longest = max(t.shape[0] for t in mk)
        mask = torch.ones(n, longest, dtype=torch.bool)
        for i, t in enumerate(mk):
            mask[i, :t.shape[0]] = False
        pad = torch.nn.utils.rnn.pad_sequence
        kk, vv = pad(mk, batch_first=True).permute(1, 0, 2), pad(mv, batch_first=True).permute(1, 0, 2)
        out = W.mha(q[:, None].repeat(1, n, 1), kk, vv, key_padding_mask=mask)[0]   # Q × n × D
    y = W.ln("ln_post", out.permute(1, 0, 2))
    return y @ W.w["proj"]


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def save(name, arr):
    np.save(os.path.join(OUT, name), arr)


def main():
    os.makedirs(OUT, exist_ok=True)
    cfg = json.load(open(os.path.join(CKPT, "config.json")))
    raw = read_safetensors(os.path.join(CKPT, "model.safetensors"), "resampler.")
    W32, W64 = Weights(raw, torch.float32), Weights(raw, torch.float64)
    D, kv_dim, Q = W32.D, cfg["vision_config"]["hidden_size"], cfg["query_num"]
    assert D == cfg["hidden_size"] and raw["kv_proj.weight"].shape == (D, kv_dim) and raw["query"].shape[0] == Q

    rng = np.random.RandomState(4505)
    n_frames = sum(len(g) for g in GROUPS)
    frames = rng.standard_normal((n_frames, TGT_H * TGT_W, kv_dim)).astype(np.float32)
    x = torch.from_numpy(frames)

    with torch.no_grad():
        right = released_resampler(W32, x, GROUPS).numpy()
        exact = released_resampler(W64, x.double(), GROUPS, table_dtype=np.float32).numpy()
        # Each group alone (as forward_frames runs them) equals the batched, padded call.
        alone, s = [], 0
        for g in GROUPS:
            alone.append(released_resampler(W32, x[s:s + len(g)], [g]).numpy()[0])
            s += len(g)
        noise = max(rel(right[i], exact[i]) for i in range(len(GROUPS)))
        print(f"float32 vs float64 (same float32 table): worst group {noise:.2e}")
        assert noise * 10 <= OUTPUT_TOL, "the tolerance must sit well above float32 rounding"
        for i in range(len(GROUPS)):
            assert rel(alone[i], right[i]) <= noise * 4, "a group alone differs from the batched call"
        # A one-frame group with id −1 is the 2.6 resampler (no temporal branch at all).
        still = released_resampler(W32, x[-1:], [[-1]], variant="no_temporal").numpy()[0]
        print(f"id -1 group vs the 2.6 path: alone {rel(alone[3], still):.1e}, in the batch {rel(right[3], still):.1e}")
        assert rel(alone[3], still) == 0.0   # zero vector added, one-frame layout: exact

        variants = ["temporal_on_values", "no_temporal", "k_lmajor_only", "per_frame_mean", "reversed_ids",
                    "cos_first"]
        wrong = {v: released_resampler(W32, x, GROUPS, variant=v).numpy() for v in variants}
        wrong_t64 = released_resampler(W32, x, GROUPS, table_dtype=np.float64).numpy()
        same = released_resampler(W32, x, GROUPS, variant="kv_lmajor").numpy()
    report = {}
    for v in variants:
        errs = [rel(wrong[v][i], right[i]) for i in range(3)]   # the groups with video ids
        report[v] = errs
        print(f"{v:20s} group errors {', '.join(f'{e:.2e}' for e in errs)}")
        assert errs[0] >= 100 * OUTPUT_TOL, v   # group 0 ([0, 3, 7]) tells every variant apart
    e64 = [rel(wrong_t64[i], right[i]) for i in range(3)]
    print("float64 table        group errors " + ", ".join(f"{e:.2e}" for e in e64) + " (not told apart)")
    # Keys and values both L-major: the same attention (the pairs are only reordered).
    e_lm = max(rel(same[i], right[i]) for i in range(4))
    print(f"k and v both L-major: {e_lm:.2e} (equivalent, as expected)")
    assert e_lm <= noise * 4

    ids = np.array(TABLE_IDS, dtype=np.int32)
    rows = temporal_table(D, ids)
    full = temporal_table(D, np.arange(HF_TABLE_ROWS, dtype=np.float32))
    for i, t in enumerate(TABLE_IDS):
        if t < HF_TABLE_ROWS:
            assert np.array_equal(full[t], rows[i]), t   # a row alone = that row of the HF table
    rows64 = temporal_table(D, ids, np.float64)
    t64 = {t: rel(rows64[i], rows[i]) for i, t in enumerate(TABLE_IDS) if t > 0}
    print("float64 vs float32 table rows: " + ", ".join(f"{t}:{e:.1e}" for t, e in t64.items()))
    assert t64[1234] >= 5 * TABLE_TOL and t64[123456] >= 100 * TABLE_TOL
    rows_np = temporal_table(D, ids, numpy_math=True)
    spread = {t: rel(rows_np[i], rows[i]) for i, t in enumerate(TABLE_IDS) if t > 0}
    print("numpy's own float32 math here vs correctly rounded: " +
          ", ".join(f"{t}:{e:.1e}" for t, e in spread.items()))

    save("frames.npy", frames)
    save("outputs.npy", right.astype(np.float32))
    save("wrong_variants.npy", np.stack([wrong[v][0] for v in variants]).astype(np.float32))
    save("table_ids.npy", ids)
    save("table_rows.npy", rows.astype(np.float32))
    meta = {"tgt_hw": [TGT_H, TGT_W], "groups": GROUPS, "output_tolerance": OUTPUT_TOL,
            "table_tolerance": TABLE_TOL, "float32_vs_float64": noise,
            "table_rows_numpy_math_here_vs_correctly_rounded": spread,
            "wrong_variants": variants, "wrong_variant_errors_groups_0_1_2": report}
    with open(os.path.join(OUT, "groups.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
