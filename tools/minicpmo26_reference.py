#!/usr/bin/python3
"""Goldens for tests/data/minicpmo26-tiny: MiniCPM-o 2.6 on a picture and a question,
computed in float64 with PyTorch (Debian's python3-torch; run by /usr/bin/python3).

Written from the released code's facts (openbmb/MiniCPM-o-2_6: modeling_minicpmo.py, whose
vision path is MiniCPM-V 2.6's modeling_navit_siglip.py + resampler.py, image_processing_minicpmv.py,
processing_minicpmo.py; the language model is transformers' Qwen2ForCausalLM), as the project's
spec (shared/spec/minicpmv.md §2) records them, not from omnid:

- chat(msgs=[{"role": "user", "content": [image, question]}]) joins the items with "\\n", the
  picture as "(<image>./</image>)", and renders the tokenizer's chat template (Qwen2.5's, with
  its default system turn) with add_generation_prompt; the processor replaces the marker with
  the picture's placeholder (image ids on) and tokenizes without BOS.
- Pixels: Pillow BICUBIC resize to find_best_resize(...) (no slicing for this small picture),
  u8/255, (x-0.5)/0.5.
- vpm: patch conv, bucketed position ids (float32 arange/bucketize as the released code),
  pre-LN encoder layers with GELU(tanh), post LayerNorm.
- resampler: kv_proj, ln_kv, 2-D sin-cos on the keys only, ln_q(query), multi-head cross
  attention (hidden/128 heads), ln_post, @ proj.
- LLM: Qwen2 (RMSNorm, q/k/v biases, GQA, rotate-half RoPE with float32 inverse frequencies,
  SwiGLU), the resampler rows written over the <unk> run; logits at every prompt position
  and 16 greedy tokens.
- The apm.*, audio_projection_layer.* and tts.* tensors take no part (pictures and text only).

Writes, under tests/data/minicpmo26-tiny/case_small: golden_prompt.json (text, ids),
golden_vision_embeds.npy (float32 [1, 16, hidden]), golden_logits.npy (float32 [tokens, vocab]),
golden_greedy.npy (int32 [16]).

  /usr/bin/python3 tools/minicpmo26_reference.py
"""
import json
import math
import os
import re
import struct

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
DIR = os.path.join(HERE, "..", "tests", "data", "minicpmo26-tiny")
CASE = os.path.join(DIR, "case_small")
GREEDY = 16
MARKER = "(<image>./</image>)"
torch.set_default_dtype(torch.float64)


def load_weights(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        body = f.read()
    header.pop("__metadata__", None)
    out = {}
    for name, v in header.items():
        a, b = v["data_offsets"]
        assert v["dtype"] == "BF16", name
        bits = np.frombuffer(body[a:b], dtype=np.uint16).astype(np.uint32) << 16
        out[name] = torch.from_numpy(bits.view(np.float32).astype(np.float64).reshape(v["shape"]))
    return out


# ---- tokenizer: byte-level BPE as tokenizer.json describes it ----------------------------

def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


class Tokenizer:
    # Qwen2's split pattern, with \\p{L} / \\p{N} as ASCII classes: the prompt here is ASCII.
    SPLIT = re.compile(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\nA-Za-z0-9]?[A-Za-z]+|[0-9]| ?[^\sA-Za-z0-9]+[\r\n]*|"
                       r"\s*[\r\n]+|\s+(?!\S)|\s+")

    def __init__(self, path):
        with open(path) as f:
            t = json.load(f)
        self.vocab = t["model"]["vocab"]
        self.ranks = {tuple(m if isinstance(m, list) else m.split(" ")): i for i, m in enumerate(t["model"]["merges"])}
        self.special = {a["content"]: a["id"] for a in t["added_tokens"]}
        self.byte_map = bytes_to_unicode()

    def bpe(self, word):
        parts = list(word)
        while len(parts) > 1:
            pairs = [(self.ranks.get((parts[i], parts[i + 1]), math.inf), i) for i in range(len(parts) - 1)]
            rank, i = min(pairs)
            if rank == math.inf:
                break
            parts = parts[:i] + [parts[i] + parts[i + 1]] + parts[i + 2:]
        return [self.vocab[p] for p in parts]

    def encode(self, text):
        assert all(ord(c) < 128 for c in text), "the reference tokenizer handles ASCII only"
        pattern = "(" + "|".join(re.escape(s) for s in sorted(self.special, key=len, reverse=True)) + ")"
        ids = []
        for chunk in re.split(pattern, text):
            if chunk in self.special:
                ids.append(self.special[chunk])
                continue
            for piece in self.SPLIT.findall(chunk):
                ids += self.bpe("".join(self.byte_map[b] for b in piece.encode("utf-8")))
        return ids


# ---- picture: find_best_resize without slicing (image_processing_minicpmv.py) ------------

def ensure_divide(length, patch):
    return max(round(length / patch) * patch, patch)   # Python's round: half to even


def find_best_resize(size, scale, patch, allow_upscale):
    w, h = size
    if w * h > scale * scale or allow_upscale:
        r = w / h
        h = int(scale / math.sqrt(r))
        w = int(h * r)
    return ensure_divide(w, patch), ensure_divide(h, patch)


def overview(img, pre):
    w, h = img.size
    scale, patch = pre["scale_resolution"], pre["patch_size"]
    assert w * h <= scale * scale, "this reference covers the unsliced case only"   # get_sliced_grid -> None
    return img.resize(find_best_resize((w, h), scale, patch, True), Image.BICUBIC)


def normalize(img, mean, std):
    a = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    a = (a - np.array(mean, np.float32)) / np.array(std, np.float32)
    return torch.from_numpy(a.transpose(2, 0, 1).astype(np.float64))   # [3, H, W]


# ---- vision tower: SigLIP NaViT (modeling_navit_siglip.py) -------------------------------

def layer_norm(x, w, b, eps=1e-6):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, eps)


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def vision_tower(W, pixels, vcfg):
    p, d, heads = vcfg["patch_size"], vcfg["hidden_size"], vcfg["num_attention_heads"]
    _, H, Wd = pixels.shape
    nh, nw = H // p, Wd // p
    x = torch.nn.functional.conv2d(pixels[None], W["vpm.embeddings.patch_embedding.weight"],
                                   W["vpm.embeddings.patch_embedding.bias"], stride=p)
    x = x.flatten(2).transpose(1, 2)[0]   # [nh*nw, d], row-major over the patch grid
    side = vcfg["image_size"] // p
    boundaries = torch.arange(1 / side, 1.0, 1 / side, dtype=torch.float32)
    frac_h = torch.arange(0, 1 - 1e-6, 1 / nh, dtype=torch.float32)
    frac_w = torch.arange(0, 1 - 1e-6, 1 / nw, dtype=torch.float32)
    bh = torch.bucketize(frac_h, boundaries, right=True)
    bw = torch.bucketize(frac_w, boundaries, right=True)
    pos = (bh[:, None] * side + bw).flatten()
    x = x + W["vpm.embeddings.position_embedding.weight"][pos]
    hd = d // heads
    for l in range(vcfg["num_hidden_layers"]):
        q = "vpm.encoder.layers.%d." % l
        a = layer_norm(x, W[q + "layer_norm1.weight"], W[q + "layer_norm1.bias"])

        def proj(n):
            return (a @ W[q + "self_attn.%s.weight" % n].T + W[q + "self_attn.%s.bias" % n]).view(-1, heads, hd).transpose(0, 1)

        att = torch.softmax(proj("q_proj") @ proj("k_proj").transpose(1, 2) * hd ** -0.5, dim=-1) @ proj("v_proj")
        att = att.transpose(0, 1).reshape(-1, d)
        x = x + att @ W[q + "self_attn.out_proj.weight"].T + W[q + "self_attn.out_proj.bias"]
        m = layer_norm(x, W[q + "layer_norm2.weight"], W[q + "layer_norm2.bias"])
        m = gelu_tanh(m @ W[q + "mlp.fc1.weight"].T + W[q + "mlp.fc1.bias"])
        x = x + m @ W[q + "mlp.fc2.weight"].T + W[q + "mlp.fc2.bias"]
    return layer_norm(x, W["vpm.post_layernorm.weight"], W["vpm.post_layernorm.bias"]), (nh, nw)


# ---- resampler (resampler.py) -----------------------------------------------------------

def sincos_2d(dim, h, w):
    # get_2d_sincos_pos_embed: omega in float64 numpy arange / (dim/4), meshgrid(grid_w, grid_h):
    # the first half encodes the column, the second the row; the table is float32.
    def one_d(d, pos):
        omega = np.arange(d // 2, dtype=np.float32) / (d / 2.0)
        omega = 1.0 / 10000 ** omega
        out = np.einsum("hw,d->hwd", pos, omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=-1)

    grid_h = np.arange(h, dtype=np.float32)
    grid_w = np.arange(w, dtype=np.float32)
    grid = np.stack(np.meshgrid(grid_w, grid_h), axis=0)   # [2, h, w]
    emb = np.concatenate([one_d(dim // 2, grid[0]), one_d(dim // 2, grid[1])], axis=-1)
    return torch.from_numpy(emb.astype(np.float32).astype(np.float64).reshape(h * w, dim))


def resampler(W, x, grid):
    D = W["resampler.query"].shape[1]
    heads, hd = D // 128, 128
    kv = layer_norm(x @ W["resampler.kv_proj.weight"].T, W["resampler.ln_kv.weight"], W["resampler.ln_kv.bias"])
    q = layer_norm(W["resampler.query"], W["resampler.ln_q.weight"], W["resampler.ln_q.bias"])
    k_in = kv + sincos_2d(D, *grid)
    wq, wk, wv = W["resampler.attn.in_proj_weight"].chunk(3)
    bq, bk, bv = W["resampler.attn.in_proj_bias"].chunk(3)
    Q = (q @ wq.T + bq).view(-1, heads, hd).transpose(0, 1)
    K = (k_in @ wk.T + bk).view(-1, heads, hd).transpose(0, 1)
    V = (kv @ wv.T + bv).view(-1, heads, hd).transpose(0, 1)
    o = (torch.softmax((Q / math.sqrt(hd)) @ K.transpose(1, 2), dim=-1) @ V).transpose(0, 1).reshape(-1, D)
    o = o @ W["resampler.attn.out_proj.weight"].T + W["resampler.attn.out_proj.bias"]
    return layer_norm(o, W["resampler.ln_post.weight"], W["resampler.ln_post.bias"]) @ W["resampler.proj"]


# ---- language model: Qwen2ForCausalLM under llm. ----------------------------------------

def rms_norm(x, w, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def qwen2_logits(W, cfg, emb):
    H, nh, nkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd, eps, T = H // nh, cfg["rms_norm_eps"], emb.shape[0]
    # inv_freq as torch computes the buffer: float32.
    inv = (1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))).double()
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None]
    cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()

    def rope(t):   # [heads, T, hd], rotate_half
        r = torch.cat([-t[..., hd // 2:], t[..., :hd // 2]], -1)
        return t * cos + r * sin

    mask = torch.full((T, T), -math.inf).triu(1)
    x = emb
    for l in range(cfg["num_hidden_layers"]):
        p = "llm.model.layers.%d." % l
        n = rms_norm(x, W[p + "input_layernorm.weight"], eps)

        def proj(name, heads):
            return (n @ W[p + "self_attn.%s.weight" % name].T + W[p + "self_attn.%s.bias" % name]).view(T, heads, hd).transpose(0, 1)

        q, k, v = rope(proj("q_proj", nh)), rope(proj("k_proj", nkv)), proj("v_proj", nkv)
        k = k.repeat_interleave(nh // nkv, 0)
        v = v.repeat_interleave(nh // nkv, 0)
        a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(hd) + mask, -1) @ v
        x = x + a.transpose(0, 1).reshape(T, nh * hd) @ W[p + "self_attn.o_proj.weight"].T
        n = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        g = n @ W[p + "mlp.gate_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * (n @ W[p + "mlp.up_proj.weight"].T)) @ W[p + "mlp.down_proj.weight"].T
    return rms_norm(x, W["llm.model.norm.weight"], eps) @ W["llm.lm_head.weight"].T


# ---- the pipeline -----------------------------------------------------------------------

def chat_prompt(question, placeholder):
    # The release's template (Qwen2.5's) without tools: its default system turn when the first
    # message is not a system one, ChatML turns, then the generation prompt.
    content = "\n".join([MARKER, question])
    text = ("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\n" + content + "<|im_end|>\n<|im_start|>assistant\n")
    return text.replace(MARKER, placeholder, 1)


def main():
    with open(os.path.join(DIR, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(DIR, "preprocessor_config.json")) as f:
        pre = json.load(f)
    W = load_weights(os.path.join(DIR, "model.safetensors"))
    W = {k: v for k, v in W.items() if k.startswith(("llm.", "vpm.", "resampler."))}   # the parts chat() uses here
    tok = Tokenizer(os.path.join(DIR, "tokenizer.json"))
    with open(os.path.join(CASE, "question.txt")) as f:
        question = f.read()

    piece = overview(Image.open(os.path.join(CASE, "image.png")).convert("RGB"), pre)
    pixels = normalize(piece, pre["norm_mean"], pre["norm_std"])
    feats, grid = vision_tower(W, pixels, cfg["vision_config"])
    rows = resampler(W, feats, grid)   # [query_num, hidden]

    n = pre["image_feature_size"]
    placeholder = (pre["im_id_start"] + "0" + pre["im_id_end"] + pre["im_start"] + pre["unk"] * n + pre["im_end"])
    text = chat_prompt(question, placeholder)
    ids = tok.encode(text)
    start = ids.index(tok.special[pre["im_start"]]) + 1
    end = ids.index(tok.special[pre["im_end"]])
    assert end - start == n

    emb = W["llm.model.embed_tokens.weight"][torch.tensor(ids)].clone()
    emb[start:end] = rows
    logits = qwen2_logits(W, cfg, emb)

    # Greedy decoding: each new token's embedding appended, the whole sequence run again
    # (the same numbers a KV cache gives).
    seq, out, margin = emb, [], math.inf
    last = logits[-1]
    for _ in range(GREEDY):
        t = int(torch.argmax(last))
        top2 = torch.topk(last, 2).values
        margin = min(margin, float(top2[0] - top2[1]))   # a near tie would make the golden fragile
        out.append(t)
        seq = torch.cat([seq, W["llm.model.embed_tokens.weight"][t][None]])
        last = qwen2_logits(W, cfg, seq)[-1]

    with open(os.path.join(CASE, "golden_prompt.json"), "w") as f:
        json.dump({"text": text, "ids": ids}, f, ensure_ascii=False)
    np.save(os.path.join(CASE, "golden_vision_embeds.npy"), rows.float().numpy()[None])
    np.save(os.path.join(CASE, "golden_logits.npy"), logits.float().numpy())
    np.save(os.path.join(CASE, "golden_greedy.npy"), np.array(out, np.int32))
    assert margin > 1e-3, "greedy step with top-2 logits %g apart" % margin
    print("prompt %d tokens, picture %dx%d -> %s patches, greedy %s (smallest top-2 gap %.4f)" %
          (len(ids), *piece.size, grid, out, margin))


if __name__ == "__main__":
    main()
