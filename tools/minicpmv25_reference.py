#!/usr/bin/python3
"""A float64 PyTorch reference of MiniCPM-Llama3-V 2.5's chat() for tiny checkpoints.

Written from the released remote code of openbmb/MiniCPM-Llama3-V-2_5 (modeling_minicpmv.py,
resampler.py, image_processing_minicpmv.py, processing_minicpmv.py; read through the
project's search tools) and transformers' Idefics2VisionTransformer / LlamaForCausalLM,
which that code instantiates. Facts carried over (docs/models.md, "MiniCPM-Llama3-V 2.5"):

- slicing: the shared algorithm (max_slice_nums, scale_resolution, patch_size), Pillow
  BICUBIC, Python's round-half-to-even; the source picture first, then slices row by row;
- placeholder: <image> + <unk>*query_num + </image>, then for a sliced picture ONE
  <slice>...</slice> block holding every slice as <image> + <unk>*query_num + </image>,
  rows joined by "\\n"; no image ids; image_bound from <image>/</image> only;
- chat(): the picture goes first in the user turn, joined to the question with "\\n";
  apply_chat_template(tokenize=True) renders BOS text once and encodes without adding
  specials (so one BOS), and the template always appends the assistant header;
- vision tower input (get_vllm_embedding, batch_vision_input): every piece of the call is
  one row of a [B, 3, patch, Lmax*patch] strip, zero-padded to the longest piece; the
  patch mask is built as patch_attn_mask[i, :n] = True on a [B, 1, Lmax] tensor, which
  sets the whole row (the size-1 middle axis is the one sliced), so Idefics2 sees a
  1 x Lmax grid for every piece: position ids bucketize(j / Lmax), no key masking;
- the resampler masks keys beyond each piece's h*w (key_padding_mask from tgt_sizes);
- generation: llm.generate(inputs_embeds=..., pad_token_id=0) without an attention mask,
  so transformers attends every prompt row: a "!" (id 0) in the prompt is not padding.

The tokenizer here is a plain byte-level BPE over the Llama-3 split regex restricted to
ASCII text (the prompts of the tiny cases are ASCII); the engine's tokenizer itself is held
to Hugging Face's ids elsewhere (tests/data/tokenizer-llama3).

Usage: /usr/bin/python3 tools/minicpmv25_reference.py tests/data/minicpmv25-tiny
(writes golden_* into every case_* folder; tools/make_minicpmv25_tiny.py runs it).
"""
import json
import math
import os
import re
import struct
import sys

import numpy as np
import torch
from PIL import Image

torch.set_grad_enabled(False)
F64 = torch.float64


# ---------------------------------------------------------------- checkpoint

def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        body = f.read()
    header.pop("__metadata__", None)
    out = {}
    for k, v in header.items():
        a, b = v["data_offsets"]
        assert v["dtype"] == "BF16", k
        raw = np.frombuffer(body[a:b], dtype=np.uint16).astype(np.uint32) << 16
        out[k] = torch.from_numpy(raw.view(np.float32).reshape(v["shape"]).astype(np.float64))
    return out


# ---------------------------------------------------------------- tokenizer

def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


# Llama-3's split regex with \p{L} -> [A-Za-z] and \p{N} -> [0-9]: exact for ASCII text.
SPLIT = re.compile(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\nA-Za-z0-9]?[A-Za-z]+|[0-9]{1,3}"
                   r"| ?[^\sA-Za-z0-9]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


class Tokenizer:
    def __init__(self, path):
        with open(path) as f:
            t = json.load(f)
        self.vocab = t["model"]["vocab"]
        self.ranks = {tuple(m.split(" ")): i for i, m in enumerate(t["model"]["merges"])}
        self.special = {a["content"]: a["id"] for a in t["added_tokens"]}
        self.b2u = bytes_to_unicode()

    def bpe(self, word):
        if word in self.vocab:   # ignore_merges, as Llama-3's tokenizer.json sets it
            return [self.vocab[word]]
        parts = list(word)
        while len(parts) > 1:
            pairs = [(self.ranks.get((parts[i], parts[i + 1]), 1 << 30), i) for i in range(len(parts) - 1)]
            r, i = min(pairs)
            if r == 1 << 30:
                break
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        return [self.vocab[p] for p in parts]

    def encode(self, text):
        assert all(ord(c) < 128 for c in text), "the reference tokenizer is ASCII-only"
        names = sorted(self.special, key=len, reverse=True)
        ids, i, chunk = [], 0, ""
        while i < len(text):
            hit = next((s for s in names if text.startswith(s, i)), None)
            if hit is None:
                chunk += text[i]
                i += 1
                continue
            ids += self.encode_plain(chunk)
            chunk = ""
            ids.append(self.special[hit])
            i += len(hit)
        return ids + self.encode_plain(chunk)

    def encode_plain(self, text):
        out = []
        for piece in SPLIT.findall(text):
            out += self.bpe("".join(self.b2u[b] for b in piece.encode()))
        return out


# ---------------------------------------------------------------- slicing (image_processing_minicpmv.py)

def ensure_divide(length, patch):
    return max(round(length / patch) * patch, patch)


def find_best_resize(size, scale, patch, allow_upscale=False):
    w, h = size
    if w * h > scale * scale or allow_upscale:
        r = w / h
        h = int(scale / math.sqrt(r))
        w = int(h * r)
    return ensure_divide(w, patch), ensure_divide(h, patch)


def get_refine_size(size, grid, scale, patch, allow_upscale=False):
    w, h = size
    gx, gy = grid
    rw, rh = ensure_divide(w, gx), ensure_divide(h, gy)
    bw, bh = find_best_resize((rw / gx, rh / gy), scale, patch, allow_upscale)
    return bw * gx, bh * gy


def slice_image(image, max_slice_nums, scale, patch):
    w, h = image.size
    log_ratio = math.log(w / h)
    multiple = min(math.ceil(w * h / (scale * scale)), max_slice_nums)
    if multiple <= 1:
        return image.resize(find_best_resize((w, h), scale, patch, True), Image.Resampling.BICUBIC), [], None
    nums = [i for i in (multiple - 1, multiple, multiple + 1) if i != 1 and i <= max_slice_nums]
    source = image.copy().resize(find_best_resize((w, h), scale, patch), Image.Resampling.BICUBIC)
    grids = [[m, n // m] for n in nums for m in range(1, n + 1) if n % m == 0]
    best, err = [1, 1], float("inf")
    for g in grids:
        e = abs(log_ratio - math.log(g[0] / g[1]))
        if e < err:
            best, err = g, e
    refined = image.resize(get_refine_size((w, h), best, scale, patch, True), Image.Resampling.BICUBIC)
    cw, ch = int(refined.size[0] / best[0]), int(refined.size[1] / best[1])
    slices = [refined.crop((x, y, x + cw, y + ch)) for y in range(0, refined.size[1], ch)
              for x in range(0, refined.size[0], cw)]
    return source, slices, best


def placeholder(grid, query_num):
    one = "<image>" + "<unk>" * query_num + "</image>"
    if grid is None:
        return one
    rows = ["".join([one] * grid[0]) for _ in range(grid[1])]
    return one + "<slice>" + "\n".join(rows) + "</slice>"


def to_pixels(piece):
    # transforms.ToTensor() then Normalize(0.5, 0.5), in float32 as torchvision does.
    a = torch.from_numpy(np.asarray(piece.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255
    return (a - 0.5) / 0.5


# ---------------------------------------------------------------- vision tower (Idefics2VisionTransformer)

def layer_norm(x, w, b, eps):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, eps)


def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def strip_batch(pixels, patch):
    """get_vllm_embedding's batch path: [B, 3, patch, Lmax*patch] and Lmax."""
    rows = []
    for p in pixels:   # reshape_by_patch, then flatten(end_dim=1).permute(1, 0)
        c, hh, ww = p.shape
        u = torch.nn.functional.unfold(p[None], (patch, patch), stride=(patch, patch))[0]   # [3*p*p, L]
        u = u.reshape(c, patch, patch, -1).permute(0, 1, 3, 2).reshape(c, patch, -1)        # [3, p, L*p]
        rows.append(u.flatten(end_dim=1).permute(1, 0))                                      # [L*p, 3*p]
    padded = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=0.0)
    B, L, _ = padded.shape
    return padded.permute(0, 2, 1).reshape(B, 3, -1, L), L // patch


def idefics2_position_ids(n_patches, per_side):
    # The mask is one row of n_patches: nb_patches_h = 1, nb_patches_w = n_patches (tensors).
    boundaries = torch.arange(1 / per_side, 1.0, 1 / per_side)
    nb_h, nb_w = torch.tensor(1), torch.tensor(n_patches)
    fh = torch.arange(0, 1 - 1e-6, 1 / nb_h)
    fw = torch.arange(0, 1 - 1e-6, 1 / nb_w)
    bh = torch.bucketize(fh, boundaries, right=True)
    bw = torch.bucketize(fw, boundaries, right=True)
    return (bh[:, None] * per_side + bw).flatten()


def vision_tower(W, vc, strips, lmax):
    P, D, heads = vc["patch_size"], vc["hidden_size"], vc["num_attention_heads"]
    per_side = vc["image_size"] // P
    eps = vc.get("layer_norm_eps", 1e-6)
    x = torch.nn.functional.conv2d(strips.to(F64), W["vpm.embeddings.patch_embedding.weight"],
                                   W["vpm.embeddings.patch_embedding.bias"], stride=P)
    x = x.flatten(2).transpose(1, 2)                                   # [B, Lmax, D]
    ids = idefics2_position_ids(lmax, per_side)
    x = x + W["vpm.embeddings.position_embedding.weight"][ids][None]
    hd = D // heads
    B, L, _ = x.shape
    for l in range(vc["num_hidden_layers"]):
        p = "vpm.encoder.layers.%d." % l
        n = layer_norm(x, W[p + "layer_norm1.weight"], W[p + "layer_norm1.bias"], eps)
        q, k, v = (torch.nn.functional.linear(n, W[p + "self_attn.%s_proj.weight" % t], W[p + "self_attn.%s_proj.bias" % t])
                   .view(B, L, heads, hd).transpose(1, 2) for t in "qkv")
        a = torch.softmax(q @ k.transpose(-1, -2) * hd ** -0.5, dim=-1) @ v   # no mask: every key attends
        a = a.transpose(1, 2).reshape(B, L, D)
        x = x + torch.nn.functional.linear(a, W[p + "self_attn.out_proj.weight"], W[p + "self_attn.out_proj.bias"])
        n = layer_norm(x, W[p + "layer_norm2.weight"], W[p + "layer_norm2.bias"], eps)
        m = gelu_tanh(torch.nn.functional.linear(n, W[p + "mlp.fc1.weight"], W[p + "mlp.fc1.bias"]))
        x = x + torch.nn.functional.linear(m, W[p + "mlp.fc2.weight"], W[p + "mlp.fc2.bias"])
    return layer_norm(x, W["vpm.post_layernorm.weight"], W["vpm.post_layernorm.bias"], eps)


# ---------------------------------------------------------------- resampler (resampler.py)

def sincos_2d(D, h, w):
    # get_2d_sincos_pos_embed: meshgrid(w, h), the first half encodes the column.
    def one(dim, pos):
        omega = np.arange(dim // 2, dtype=np.float32) / (dim / 2.0)
        omega = 1.0 / 10000 ** omega
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)
    gw, gh = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    emb = np.concatenate([one(D // 2, gw), one(D // 2, gh)], axis=1)
    return torch.from_numpy(emb.astype(np.float32)).to(F64)   # [h*w, D]


def resampler(W, feats, tgt_sizes, D, heads):
    x = layer_norm(feats @ W["resampler.kv_proj.weight"].T, W["resampler.ln_kv.weight"], W["resampler.ln_kv.bias"], 1e-6)
    q0 = layer_norm(W["resampler.query"], W["resampler.ln_q.weight"], W["resampler.ln_q.bias"], 1e-6)
    wq, wk, wv = W["resampler.attn.in_proj_weight"].chunk(3)
    bq, bk, bv = W["resampler.attn.in_proj_bias"].chunk(3)
    hd = D // heads
    outs = []
    for b, (h, w) in enumerate(tgt_sizes):
        n = h * w
        kv = x[b, :n]                                  # keys beyond h*w are masked: left out
        k = (kv + sincos_2d(D, h, w)) @ wk.T + bk
        v = kv @ wv.T + bv
        q = q0 @ wq.T + bq
        Q, K, V = (t.view(-1, heads, hd).transpose(0, 1) for t in (q, k, v))
        a = torch.softmax((Q / math.sqrt(hd)) @ K.transpose(-1, -2), dim=-1) @ V
        o = a.transpose(0, 1).reshape(-1, D) @ W["resampler.attn.out_proj.weight"].T + W["resampler.attn.out_proj.bias"]
        o = layer_norm(o, W["resampler.ln_post.weight"], W["resampler.ln_post.bias"], 1e-6)
        outs.append(o @ W["resampler.proj"])
    return torch.stack(outs)


# ---------------------------------------------------------------- Llama (LlamaForCausalLM)

class Llama:
    def __init__(self, W, cfg):
        self.W, self.c = W, cfg
        self.hd = cfg["hidden_size"] // cfg["num_attention_heads"]
        # LlamaRotaryEmbedding: inv_freq and the angles in float32, cos/sin cast to the model dtype.
        self.inv_freq = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, self.hd, 2, dtype=torch.int64).float() / self.hd))

    def rms(self, x, w):
        return w * (x / torch.sqrt((x * x).mean(-1, keepdim=True) + self.c["rms_norm_eps"]))

    def rope(self, x, pos):
        f = (self.inv_freq[:, None].float() @ pos[None, :].float()).T      # [T, hd/2] float32
        emb = torch.cat([f, f], dim=-1)
        cos, sin = emb.cos().to(F64), emb.sin().to(F64)
        half = x.shape[-1] // 2
        rot = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return x * cos + rot * sin

    def forward(self, emb, cache):
        """emb [T, D] new rows; cache: list of (k, v) per layer, extended in place. Returns logits [T, V]."""
        c, W = self.c, self.W
        H, KV, hd = c["num_attention_heads"], c["num_key_value_heads"], self.hd
        start = cache[0][0].shape[1] if cache[0] is not None else 0
        T = emb.shape[0]
        pos = torch.arange(start, start + T)
        x = emb
        for l in range(c["num_hidden_layers"]):
            p = "llm.model.layers.%d." % l
            n = self.rms(x, W[p + "input_layernorm.weight"])
            q = (n @ W[p + "self_attn.q_proj.weight"].T).view(T, H, hd).transpose(0, 1)
            k = (n @ W[p + "self_attn.k_proj.weight"].T).view(T, KV, hd).transpose(0, 1)
            v = (n @ W[p + "self_attn.v_proj.weight"].T).view(T, KV, hd).transpose(0, 1)
            q, k = self.rope(q, pos), self.rope(k, pos)
            if cache[l] is not None:
                k = torch.cat([cache[l][0], k], dim=1)
                v = torch.cat([cache[l][1], v], dim=1)
            cache[l] = (k, v)
            rep = H // KV
            kk, vv = k.repeat_interleave(rep, 0), v.repeat_interleave(rep, 0)
            s = q @ kk.transpose(-1, -2) / math.sqrt(hd)
            S = kk.shape[1]
            mask = torch.arange(S)[None, :] > (torch.arange(T)[:, None] + start)
            s = s.masked_fill(mask, float("-inf"))
            a = (torch.softmax(s, -1) @ vv).transpose(0, 1).reshape(T, H * hd)
            x = x + a @ W[p + "self_attn.o_proj.weight"].T
            n = self.rms(x, W[p + "post_attention_layernorm.weight"])
            g = n @ W[p + "mlp.gate_proj.weight"].T
            u = n @ W[p + "mlp.up_proj.weight"].T
            x = x + (torch.nn.functional.silu(g) * u) @ W[p + "mlp.down_proj.weight"].T
        return self.rms(x, W["llm.model.norm.weight"]) @ W["llm.lm_head.weight"].T


# ---------------------------------------------------------------- chat()

def run_case(root, case, W, cfg, pre, tok, llama, greedy_n):
    d = os.path.join(root, case)
    image = Image.open(os.path.join(d, "image.png")).convert("RGB")
    with open(os.path.join(d, "question.txt")) as f:
        question = f.read()
    Q = cfg["query_num"]
    P = pre["patch_size"]
    source, slices, grid = slice_image(image, pre["max_slice_nums"], pre["scale_resolution"], P)
    pieces = [source] + slices
    content = placeholder(grid, Q) + "\n" + question
    text = "<|begin_of_text|>" + "<|start_header_id|>user<|end_header_id|>\n\n" + content.strip() + "<|eot_id|>" + \
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    ids = tok.encode(text)

    pixels = [to_pixels(p) for p in pieces]
    tgt = [(p.shape[1] // P, p.shape[2] // P) for p in pixels]
    strips, lmax = strip_batch(pixels, P)
    assert lmax == max(h * w for h, w in tgt)
    feats = vision_tower(W, cfg["vision_config"], strips, lmax)
    D = cfg["hidden_size"]
    rows = resampler(W, feats, tgt, D, D // 128)                      # [pieces, Q, D]

    t = torch.tensor(ids)
    starts = (t == tok.special["<image>"]).nonzero().flatten() + 1
    ends = (t == tok.special["</image>"]).nonzero().flatten()
    assert len(starts) == len(ends) == len(pieces)
    emb = W["llm.model.embed_tokens.weight"][t].clone()
    for i, (a, b) in enumerate(zip(starts.tolist(), ends.tolist())):
        assert b - a == Q
        emb[a:b] = rows[i]

    cache = [None] * cfg["num_hidden_layers"]
    logits = llama.forward(emb, cache)
    # Greedy through the cache, every prompt row attended (generate() without a mask).
    gen, last = [], logits[-1]
    for _ in range(greedy_n):
        nxt = int(torch.argmax(last))
        gen.append(nxt)
        last = llama.forward(W["llm.model.embed_tokens.weight"][torch.tensor([nxt])], cache)[-1]

    # Logits of every 8th position and of the last 8 (the file stays small; each depends on
    # every row before it, the picture rows included).
    T = len(ids)
    keep = sorted(set(range(0, T, 8)) | set(range(max(0, T - 8), T)))
    np.save(os.path.join(d, "golden_logit_positions.npy"), np.array(keep, dtype=np.int32))
    np.save(os.path.join(d, "golden_logits.npy"), logits[keep].numpy().astype(np.float32))
    np.save(os.path.join(d, "golden_greedy.npy"), np.array(gen, dtype=np.int32))
    with open(os.path.join(d, "golden_prompt.json"), "w") as f:
        json.dump({"text": text, "ids": ids}, f, ensure_ascii=False)
    with open(os.path.join(d, "golden_slices.json"), "w") as f:
        json.dump({"grid": grid, "sizes_wh": [list(p.size) for p in pieces], "tgt_sizes_hw": [list(s) for s in tgt],
                   "strip_patches": lmax}, f)
    print("%s: %d pieces (grid %s), Lmax %d, %d prompt tokens, greedy %s" % (case, len(pieces), grid, lmax, T, gen),
          file=sys.stderr)


def main(root):
    with open(os.path.join(root, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(root, "preprocessor_config.json")) as f:
        pre = json.load(f)
    W = load_safetensors(os.path.join(root, "model.safetensors"))
    tok = Tokenizer(os.path.join(root, "tokenizer.json"))
    llama = Llama(W, cfg)
    for case in sorted(os.listdir(root)):
        if case.startswith("case_"):
            run_case(root, case, W, cfg, pre, tok, llama, 12)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "data",
                                                             "minicpmv25-tiny"))
