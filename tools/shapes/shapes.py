"""Shapes demo model: picture generator, MiniCPM-V 2.6 preprocessing, tokenizer and a
PyTorch implementation of the MiniCPM-V 2.6 architecture (SigLIP NaViT tower, resampler,
Qwen2 decoder) whose math follows docs/models.md and the engine (daemon/model/).

Used by train.py, evaluate.py and verify_reference.py in this folder. Needs only Debian's
python3-torch, python3-numpy and python3-pil.
"""
import json
import math
import os
import re
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image, ImageDraw

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
REF_DIR = os.path.join(REPO, "tests", "data", "minicpmv26-tiny")

# ----------------------------------------------------------------------------- pictures

KINDS = ["circle", "square", "triangle"]
COLOURS = {
    "red": (225, 30, 30),
    "green": (30, 165, 50),
    "blue": (35, 70, 225),
    "yellow": (240, 205, 25),
}
COLOUR_NAMES = list(COLOURS)
Q_SHAPE = "What shape is this?"
Q_COLOUR = "What colour is the shape?"
Q_COUNT = "How many shapes are there?"
QUESTIONS = [Q_SHAPE, Q_COLOUR, Q_COUNT]


def _jitter(rng, rgb):
    return tuple(int(min(255, max(0, c + rng.randint(-15, 16)))) for c in rgb)


def make_picture(rng):
    """rng: numpy RandomState. Returns (PIL RGB image, list of (kind, colour, box))."""
    while True:
        w = int(rng.randint(100, 601))
        h = int(rng.randint(100, 601))
        if 0.5 <= w / h <= 2.0:
            break
    n = int(rng.randint(1, 4))
    short = min(w, h)
    same_kind = n > 1 and rng.rand() < 0.4
    same_colour = n > 1 and rng.rand() < 0.4
    kind0 = KINDS[rng.randint(3)]
    col0 = COLOUR_NAMES[rng.randint(4)]
    img = Image.new("RGB", (w, h), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    shapes = []
    boxes = []
    attempts = 0
    while len(shapes) < n:
        attempts += 1
        if attempts > 500:  # start over with fresh sizes (rare)
            return make_picture(rng)
        frac = rng.uniform(0.15, 0.40) if n == 1 else rng.uniform(0.12, 0.25)
        s = max(8, int(round(frac * short)))
        x0 = int(rng.randint(0, w - s + 1))
        y0 = int(rng.randint(0, h - s + 1))
        box = (x0, y0, x0 + s, y0 + s)
        gap = 4
        if any(not (box[2] + gap <= b[0] or b[2] + gap <= box[0] or box[3] + gap <= b[1] or b[3] + gap <= box[1])
               for b in boxes):
            continue
        kind = kind0 if same_kind else KINDS[rng.randint(3)]
        cname = col0 if same_colour else COLOUR_NAMES[rng.randint(4)]
        rgb = _jitter(rng, COLOURS[cname])
        x1, y1 = x0 + s - 1, y0 + s - 1
        if kind == "circle":
            draw.ellipse([x0, y0, x1, y1], fill=rgb)
        elif kind == "square":
            draw.rectangle([x0, y0, x1, y1], fill=rgb)
        else:
            draw.polygon([((x0 + x1) / 2.0, y0), (x1, y1), (x0, y1)], fill=rgb)
        boxes.append(box)
        shapes.append((kind, cname, box))
    return img, shapes


def valid_questions(shapes):
    """(question, answer) pairs that have one right answer for this picture."""
    out = []
    kinds = {s[0] for s in shapes}
    cols = {s[1] for s in shapes}
    if len(kinds) == 1:
        out.append((Q_SHAPE, shapes[0][0]))
    if len(cols) == 1:
        out.append((Q_COLOUR, shapes[0][1]))
    out.append((Q_COUNT, str(len(shapes))))
    return out


# ----------------------------------------------------------------------------- slicing (spec 2.6)

def _ensure_divide(length, p):
    return max(round(length / p) * p, p)  # Python round: half to even, as the reference


def find_best_resize(size, S, p, allow_upscale=False):
    w, h = size
    if w * h > S * S or allow_upscale:
        r = w / h
        h = int(S / math.sqrt(r))
        w = int(h * r)
    return (_ensure_divide(w, p), _ensure_divide(h, p))


def get_refine_size(size, grid, S, p, allow_upscale=False):
    w, h = size
    gx, gy = grid
    rw = _ensure_divide(w, gx)
    rh = _ensure_divide(h, gy)
    cw, ch = find_best_resize((rw / gx, rh / gy), S, p, allow_upscale=allow_upscale)
    return (cw * gx, ch * gy)


def get_sliced_grid(size, max_slice_nums, S, never_split=False):
    w, h = size
    log_ratio = math.log(w / h)
    ratio = w * h / (S * S)
    multiple = min(math.ceil(ratio), max_slice_nums)
    if multiple <= 1 or never_split:
        return None
    cands = []
    for n in [multiple - 1, multiple, multiple + 1]:
        if n == 1 or n > max_slice_nums:
            continue
        cands.append(n)
    grids = []
    for n in cands:
        m = 1
        while m <= n:
            if n % m == 0:
                grids.append([m, n // m])
            m += 1
    best = [1, 1]
    min_err = float("inf")
    for g in grids:
        err = abs(log_ratio - math.log(g[0] / g[1]))
        if err < min_err:
            best = g
            min_err = err
    return best


def slice_image(img, max_slice_nums, S, p):
    """Returns (pieces [overview, slices row-major] as PIL images, grid or None)."""
    size = img.size
    grid = get_sliced_grid(size, max_slice_nums, S)
    if grid is None:
        ov = img.resize(find_best_resize(size, S, p, allow_upscale=True), resample=Image.BICUBIC)
        return [ov], None
    ov = img.resize(find_best_resize(size, S, p), resample=Image.BICUBIC)
    refined = img.resize(get_refine_size(size, grid, S, p, allow_upscale=True), resample=Image.BICUBIC)
    W, H = refined.size
    cw, ch = W // grid[0], H // grid[1]
    pieces = [ov]
    for i in range(0, H, ch):
        for j in range(0, W, cw):
            pieces.append(refined.crop((j, i, j + cw, i + ch)))
    return pieces, grid


def normalize(piece):
    """PIL RGB -> float32 tensor [3, H, W], (x/255 - 0.5)/0.5."""
    a = np.asarray(piece.convert("RGB"), dtype=np.float32) / 255.0
    a = (a - 0.5) / 0.5
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))


def placeholder(grid, query_num, image_index=0):
    u = "<unk>" * query_num
    s = "<image_id>%d</image_id>" % image_index + "<image>" + u + "</image>"
    if grid is not None:
        rows = []
        for _ in range(grid[1]):
            rows.append("".join("<slice>" + u + "</slice>" for _ in range(grid[0])))
        s += "\n".join(rows)
    return s


def chat_prompt(user_content):
    return ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n" + user_content +
            "<|im_end|>\n<|im_start|>assistant\n")


# ----------------------------------------------------------------------------- tokenizer

def _bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


class Tokenizer:
    """Byte-level BPE from a HF tokenizer.json (enough for the ASCII prompts of this demo)."""

    PAT = re.compile(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|(?:[^\r\n\w]|_)?[^\W\d_]+|\d| ?(?:[^\s\w]|_)+[\r\n]*"
                     r"|\s*[\r\n]+|\s+(?!\S)|\s+")

    def __init__(self, path):
        t = json.load(open(path, encoding="utf-8"))
        self.vocab = t["model"]["vocab"]
        self.inv = {i: s for s, i in self.vocab.items()}
        merges = t["model"]["merges"]
        self.ranks = {}
        for i, m in enumerate(merges):
            pair = tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
            self.ranks[pair] = i
        self.added = {a["content"]: a["id"] for a in t["added_tokens"]}
        for a in t["added_tokens"]:
            self.inv[a["id"]] = a["content"]
        self.split_re = re.compile("(" + "|".join(re.escape(k) for k in sorted(self.added, key=len, reverse=True)) + ")")
        self.b2u = _bytes_to_unicode()
        self.u2b = {v: k for k, v in self.b2u.items()}
        self.cache = {}

    def _bpe(self, word):
        if word in self.cache:
            return self.cache[word]
        parts = list(word)
        while len(parts) > 1:
            best = None
            for i in range(len(parts) - 1):
                r = self.ranks.get((parts[i], parts[i + 1]))
                if r is not None and (best is None or r < best[0]):
                    best = (r, i)
            if best is None:
                break
            i = best[1]
            parts = parts[:i] + [parts[i] + parts[i + 1]] + parts[i + 2:]
        ids = [self.vocab[p] for p in parts]
        self.cache[word] = ids
        return ids

    def encode(self, text):
        ids = []
        for seg in self.split_re.split(text):
            if not seg:
                continue
            if seg in self.added:
                ids.append(self.added[seg])
                continue
            for m in self.PAT.findall(seg):
                ids.extend(self._bpe("".join(self.b2u[b] for b in m.encode("utf-8"))))
        return ids

    def decode(self, ids):
        out = bytearray()
        for i in ids:
            s = self.inv[i]
            if s in self.added:
                out += s.encode("utf-8")
            else:
                out += bytes(self.u2b[c] for c in s)
        return out.decode("utf-8", errors="replace")


# ----------------------------------------------------------------------------- model

class Cfg:
    def __init__(self, config, pre):
        self.hidden = config["hidden_size"]
        self.inter = config["intermediate_size"]
        self.n_heads = config["num_attention_heads"]
        self.n_kv = config["num_key_value_heads"]
        self.n_layers = config["num_hidden_layers"]
        self.vocab = config["vocab_size"]
        self.rope_theta = config["rope_theta"]
        self.rms_eps = config["rms_norm_eps"]
        self.query_num = config["query_num"]
        vc = config["vision_config"]
        self.v_hidden = vc["hidden_size"]
        self.v_inter = vc["intermediate_size"]
        self.v_heads = vc["num_attention_heads"]
        self.v_layers = vc["num_hidden_layers"]
        self.patch = vc["patch_size"]
        self.v_image_size = vc["image_size"]
        self.P = self.v_image_size // self.patch
        self.scale_resolution = pre["scale_resolution"]
        self.max_slice_nums = pre["max_slice_nums"]


class VisionLayer(nn.Module):
    def __init__(self, d, inter, heads):
        super().__init__()
        self.heads = heads
        self.layer_norm1 = nn.LayerNorm(d, eps=1e-6)
        self.layer_norm2 = nn.LayerNorm(d, eps=1e-6)
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)
        self.fc1 = nn.Linear(d, inter)
        self.fc2 = nn.Linear(inter, d)

    def forward(self, x, mask):
        B, L, D = x.shape
        hd = D // self.heads
        a = self.layer_norm1(x)
        q = self.q_proj(a).view(B, L, self.heads, hd).transpose(1, 2)
        k = self.k_proj(a).view(B, L, self.heads, hd).transpose(1, 2)
        v = self.v_proj(a).view(B, L, self.heads, hd).transpose(1, 2)
        s = torch.matmul(q, k.transpose(-1, -2)) * (hd ** -0.5)
        if mask is not None:
            s = s + mask
        p = torch.softmax(s.float(), dim=-1).to(q.dtype)
        o = torch.matmul(p, v).transpose(1, 2).reshape(B, L, D)
        x = x + self.out_proj(o)
        m = self.layer_norm2(x)
        return x + self.fc2(F.gelu(self.fc1(m), approximate="tanh"))


def sincos_2d(D, h, w):
    """Resampler 2-D table [h, w, D]: [sin(x w), cos(x w), sin(y w), cos(y w)] (spec 2.5.2)."""
    D4 = D // 4
    omega = np.arange(D4, dtype=np.float32)
    omega /= D4
    omega = 1.0 / 10000 ** omega
    gy, gx = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
    ox = np.einsum("hw,d->hwd", gx, omega)
    oy = np.einsum("hw,d->hwd", gy, omega)
    emb = np.concatenate([np.sin(ox), np.cos(ox), np.sin(oy), np.cos(oy)], axis=-1).astype(np.float32)
    return torch.from_numpy(emb)


def patch_pos_ids(nb_h, nb_w, P):
    boundaries = torch.arange(1 / P, 1.0, 1 / P)
    fh = torch.arange(0, 1 - 1e-6, 1 / nb_h)
    fw = torch.arange(0, 1 - 1e-6, 1 / nb_w)
    bh = torch.bucketize(fh, boundaries, right=True)
    bw = torch.bucketize(fw, boundaries, right=True)
    return (bh[:, None] * P + bw[None, :]).flatten()


def to_patches(px, p):
    """[3, H, W] -> [L, 3*p*p], rows in row-major patch order, columns ordered (c, ky, kx)."""
    C, H, W = px.shape
    x = px.view(C, H // p, p, W // p, p).permute(1, 3, 0, 2, 4)
    return x.reshape((H // p) * (W // p), C * p * p)


class MiniCPMV(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = c = cfg
        d, D = c.v_hidden, c.hidden
        # vision tower
        self.patch_embedding = nn.Conv2d(3, d, kernel_size=c.patch, stride=c.patch)
        self.position_embedding = nn.Embedding(c.P * c.P, d)
        self.vlayers = nn.ModuleList([VisionLayer(d, c.v_inter, c.v_heads) for _ in range(c.v_layers)])
        self.post_layernorm = nn.LayerNorm(d, eps=1e-6)
        # resampler
        self.query = nn.Parameter(torch.zeros(c.query_num, D))
        self.kv_proj = nn.Linear(d, D, bias=False)
        self.ln_q = nn.LayerNorm(D, eps=1e-6)
        self.ln_kv = nn.LayerNorm(D, eps=1e-6)
        self.ln_post = nn.LayerNorm(D, eps=1e-6)
        self.in_proj_weight = nn.Parameter(torch.zeros(3 * D, D))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * D))
        self.out_proj = nn.Linear(D, D)
        self.proj = nn.Parameter(torch.zeros(D, D))
        self.r_heads = max(1, D // 128)
        # llm
        self.embed_tokens = nn.Embedding(c.vocab, D)
        hd = D // c.n_heads
        self.head_dim = hd
        self.layers = nn.ModuleList()
        for _ in range(c.n_layers):
            l = nn.Module()
            l.input_layernorm = nn.Parameter(torch.ones(D))
            l.post_attention_layernorm = nn.Parameter(torch.ones(D))
            l.q_proj = nn.Linear(D, c.n_heads * hd)
            l.k_proj = nn.Linear(D, c.n_kv * hd)
            l.v_proj = nn.Linear(D, c.n_kv * hd)
            l.o_proj = nn.Linear(c.n_heads * hd, D, bias=False)
            l.gate_proj = nn.Linear(D, c.inter, bias=False)
            l.up_proj = nn.Linear(D, c.inter, bias=False)
            l.down_proj = nn.Linear(c.inter, D, bias=False)
            self.layers.append(l)
        self.norm = nn.Parameter(torch.ones(D))
        self.lm_head = nn.Linear(D, c.vocab, bias=False)
        inv = 1.0 / (float(c.rope_theta) ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
        self.register_buffer("inv_freq", inv, persistent=False)

    # -- init for training from scratch
    def init_weights(self, seed):
        g = torch.Generator().manual_seed(seed)
        c = self.cfg
        for name, p in self.named_parameters():
            with torch.no_grad():
                if p.dim() == 1:
                    if "layernorm" in name or name.startswith("ln_") or name == "norm" or \
                            ("layer_norm" in name and name.endswith("weight")) or name.endswith("post_layernorm.weight"):
                        p.fill_(1.0)
                    else:
                        p.zero_()
                else:
                    p.copy_(torch.randn(p.shape, generator=g) * 0.02)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.LayerNorm):
                    m.weight.fill_(1.0)
                    m.bias.zero_()
            for l in self.layers:
                l.input_layernorm.fill_(1.0)
                l.post_attention_layernorm.fill_(1.0)
            self.norm.fill_(1.0)
            # smooth start for the bucketed position table: 2-D sin-cos over the P x P grid
            pe = sincos_2d(c.v_hidden, c.P, c.P).reshape(c.P * c.P, c.v_hidden)
            self.position_embedding.weight.copy_(pe * 0.1)
            self.proj.copy_(torch.randn(self.proj.shape, generator=g) * (c.hidden ** -0.5))

    # -- vision: list of [3, H, W] pieces -> list of [query_num, D]
    def encode_pieces(self, pieces, return_vit=False):
        c = self.cfg
        p = c.patch
        W_pe = self.patch_embedding.weight.reshape(c.v_hidden, -1)
        tg = [(px.shape[1] // p, px.shape[2] // p) for px in pieces]
        Ls = [h * w for h, w in tg]
        Lmax = max(Ls)
        B = len(pieces)
        patches = torch.zeros(B, Lmax, 3 * p * p)
        pos = torch.zeros(B, Lmax, dtype=torch.long)
        for i, px in enumerate(pieces):
            patches[i, :Ls[i]] = to_patches(px, p)
            pos[i, :Ls[i]] = patch_pos_ids(tg[i][0], tg[i][1], c.P)
        x = patches @ W_pe.t() + self.patch_embedding.bias
        x = x + self.position_embedding(pos)
        valid = torch.arange(Lmax)[None, :] < torch.tensor(Ls)[:, None]  # [B, Lmax]
        mask = None
        if not bool(valid.all()):
            mask = torch.zeros(B, 1, 1, Lmax)
            mask.masked_fill_(~valid[:, None, None, :], torch.finfo(torch.float32).min)
        for l in self.vlayers:
            x = l(x, mask)
        x = self.post_layernorm(x)
        if return_vit:
            return self.resample(x, tg, valid), x
        return self.resample(x, tg, valid)

    def resample(self, x, tg, valid):
        c = self.cfg
        D = c.hidden
        B, Lmax, _ = x.shape
        kv = self.ln_kv(self.kv_proj(x))
        maxh = max(h for h, _ in tg)
        maxw = max(w for _, w in tg)
        table = sincos_2d(D, maxh, maxw)
        posk = torch.zeros(B, Lmax, D)
        for i, (h, w) in enumerate(tg):
            posk[i, :h * w] = table[:h, :w].reshape(h * w, D)
        q0 = self.ln_q(self.query)  # [Q, D]
        Wq, Wk, Wv = self.in_proj_weight.chunk(3, dim=0)
        bq, bk, bv = self.in_proj_bias.chunk(3, dim=0)
        H = self.r_heads
        hd = D // H
        Q = (q0 @ Wq.t() + bq).view(-1, H, hd).transpose(0, 1)  # [H, Q, hd]
        K = ((kv + posk) @ Wk.t() + bk).view(B, Lmax, H, hd).transpose(1, 2)  # [B, H, L, hd]
        V = (kv @ Wv.t() + bv).view(B, Lmax, H, hd).transpose(1, 2)
        s = torch.matmul((Q / math.sqrt(hd))[None], K.transpose(-1, -2))  # [B, H, Q, L]
        s = s.masked_fill(~valid[:, None, None, :], float("-inf"))
        a = torch.softmax(s, dim=-1)
        o = torch.matmul(a, V).transpose(1, 2).reshape(B, -1, D)
        o = self.out_proj(o)
        return self.ln_post(o) @ self.proj  # [B, Q, D]

    # -- llm
    @staticmethod
    def _rms(x, w, eps):
        v = x.float().pow(2).mean(-1, keepdim=True)
        return (x.float() * torch.rsqrt(v + eps)).to(x.dtype) * w

    def _rope(self, T):
        pos = torch.arange(T, dtype=torch.float32)
        fr = pos[:, None] * self.inv_freq[None, :]
        emb = torch.cat([fr, fr], dim=-1)
        return emb.cos(), emb.sin()

    @staticmethod
    def _rot(x):
        h = x.shape[-1] // 2
        return torch.cat([-x[..., h:], x[..., :h]], dim=-1)

    def llm(self, emb, hidden_only=False):
        """emb [B, T, D] (right-padded; causal) -> logits [B, T, V] (or final hidden states)."""
        c = self.cfg
        B, T, D = emb.shape
        hd = self.head_dim
        cos, sin = self._rope(T)
        x = emb
        rep = c.n_heads // c.n_kv
        causal = torch.full((T, T), float("-inf")).triu(1)
        for l in self.layers:
            n = self._rms(x, l.input_layernorm, c.rms_eps)
            q = l.q_proj(n).view(B, T, c.n_heads, hd).transpose(1, 2)
            k = l.k_proj(n).view(B, T, c.n_kv, hd).transpose(1, 2)
            v = l.v_proj(n).view(B, T, c.n_kv, hd).transpose(1, 2)
            q = q * cos + self._rot(q) * sin
            k = k * cos + self._rot(k) * sin
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
            sc = torch.matmul(q, k.transpose(-1, -2)) * (hd ** -0.5) + causal
            o = torch.matmul(torch.softmax(sc, dim=-1), v)
            x = x + l.o_proj(o.transpose(1, 2).reshape(B, T, -1))
            n = self._rms(x, l.post_attention_layernorm, c.rms_eps)
            x = x + l.down_proj(F.silu(l.gate_proj(n)) * l.up_proj(n))
        if hidden_only:
            return x
        return self.lm_head(self._rms(x, self.norm, c.rms_eps))

    def embed(self, ids, vis_rows):
        """ids: LongTensor [T]; vis_rows [n_unk, D] written over the <unk> rows, in order."""
        e = self.embed_tokens(ids)
        idx = (ids == UNK_ID).nonzero().flatten()
        assert idx.numel() == vis_rows.shape[0], (idx.numel(), vis_rows.shape)
        return e.index_copy(0, idx, vis_rows)

    # -- names of the Hugging Face checkpoint layout
    def hf_state(self):
        c = self.cfg
        s = {}
        s["vpm.embeddings.patch_embedding.weight"] = self.patch_embedding.weight
        s["vpm.embeddings.patch_embedding.bias"] = self.patch_embedding.bias
        s["vpm.embeddings.position_embedding.weight"] = self.position_embedding.weight
        for i, l in enumerate(self.vlayers):
            pre = "vpm.encoder.layers.%d." % i
            for n in ["q_proj", "k_proj", "v_proj", "out_proj"]:
                s[pre + "self_attn.%s.weight" % n] = getattr(l, n).weight
                s[pre + "self_attn.%s.bias" % n] = getattr(l, n).bias
            for n in ["layer_norm1", "layer_norm2"]:
                s[pre + n + ".weight"] = getattr(l, n).weight
                s[pre + n + ".bias"] = getattr(l, n).bias
            for n in ["fc1", "fc2"]:
                s[pre + "mlp.%s.weight" % n] = getattr(l, n).weight
                s[pre + "mlp.%s.bias" % n] = getattr(l, n).bias
        s["vpm.post_layernorm.weight"] = self.post_layernorm.weight
        s["vpm.post_layernorm.bias"] = self.post_layernorm.bias
        s["resampler.query"] = self.query
        s["resampler.kv_proj.weight"] = self.kv_proj.weight
        s["resampler.attn.in_proj_weight"] = self.in_proj_weight
        s["resampler.attn.in_proj_bias"] = self.in_proj_bias
        s["resampler.attn.out_proj.weight"] = self.out_proj.weight
        s["resampler.attn.out_proj.bias"] = self.out_proj.bias
        for n in ["ln_q", "ln_kv", "ln_post"]:
            s["resampler.%s.weight" % n] = getattr(self, n).weight
            s["resampler.%s.bias" % n] = getattr(self, n).bias
        s["resampler.proj"] = self.proj
        s["llm.model.embed_tokens.weight"] = self.embed_tokens.weight
        for i, l in enumerate(self.layers):
            pre = "llm.model.layers.%d." % i
            s[pre + "input_layernorm.weight"] = l.input_layernorm
            s[pre + "post_attention_layernorm.weight"] = l.post_attention_layernorm
            for n in ["q_proj", "k_proj", "v_proj"]:
                s[pre + "self_attn.%s.weight" % n] = getattr(l, n).weight
                s[pre + "self_attn.%s.bias" % n] = getattr(l, n).bias
            s[pre + "self_attn.o_proj.weight"] = l.o_proj.weight
            for n in ["gate_proj", "up_proj", "down_proj"]:
                s[pre + "mlp.%s.weight" % n] = getattr(l, n).weight
        s["llm.model.norm.weight"] = self.norm
        s["llm.lm_head.weight"] = self.lm_head.weight
        return s

    def load_hf(self, tensors):
        s = self.hf_state()
        missing = [k for k in s if k not in tensors]
        if missing:
            raise KeyError("missing tensors: %s" % missing[:5])
        with torch.no_grad():
            for k, p in s.items():
                t = tensors[k]
                if tuple(t.shape) != tuple(p.shape):
                    raise ValueError("%s: shape %s, expected %s" % (k, tuple(t.shape), tuple(p.shape)))
                p.copy_(t)


UNK_ID = 603  # overwritten by Prompter from the tokenizer


# ----------------------------------------------------------------------------- safetensors

_DT = {"F32": (np.float32, 4), "BF16": (np.uint16, 2), "F16": (np.float16, 2)}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        dt, _ = _DT[v["dtype"]]
        arr = np.frombuffer(data[a:b], dtype=dt).reshape(v["shape"])
        if v["dtype"] == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[k] = torch.from_numpy(arr.astype(np.float32).copy())
    return out


def write_safetensors(path, tensors):
    header = {"__metadata__": {"format": "pt"}}
    blobs = []
    off = 0
    for k in sorted(tensors):
        a = tensors[k].detach().to(torch.float32).contiguous().numpy()
        b = a.tobytes()
        header[k] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- end-to-end helper

class Pipeline:
    """Picture + question -> prompt ids and pieces; greedy answers with the PyTorch model."""

    def __init__(self, model_dir=None, model=None, cfg_json=None, pre_json=None, tok_path=None):
        global UNK_ID
        if model_dir is not None:
            cfg_json = json.load(open(os.path.join(model_dir, "config.json")))
            pre_json = json.load(open(os.path.join(model_dir, "preprocessor_config.json")))
            tok_path = os.path.join(model_dir, "tokenizer.json")
        self.cfg = Cfg(cfg_json, pre_json)
        self.tok = Tokenizer(tok_path)
        UNK_ID = self.tok.added["<unk>"]
        self.im_end = self.tok.added["<|im_end|>"]
        self.eos = {self.im_end, self.tok.added["<|endoftext|>"]}
        if model is None:
            model = MiniCPMV(self.cfg)
            if model_dir is not None:
                model.load_hf(read_safetensors(os.path.join(model_dir, "model.safetensors")))
        self.model = model

    def prepare(self, img):
        c = self.cfg
        pieces, grid = slice_image(img.convert("RGB"), c.max_slice_nums, c.scale_resolution, c.patch)
        return [normalize(p) for p in pieces], grid

    def prompt_ids(self, grid, question):
        return self.tok.encode(chat_prompt(placeholder(grid, self.cfg.query_num) + "\n" + question))

    @torch.no_grad()
    def answer(self, img, question, max_tokens=8):
        pxs, grid = self.prepare(img)
        ids = self.prompt_ids(grid, question)
        vis = self.model.encode_pieces(pxs).reshape(-1, self.cfg.hidden)
        out = []
        for _ in range(max_tokens):
            t = torch.tensor(ids + out, dtype=torch.long)
            e = self.model.embed(t, vis)
            nxt = int(self.model.llm(e[None])[0, -1].argmax())
            if nxt in self.eos:
                break
            out.append(nxt)
        return self.tok.decode(out).strip()
