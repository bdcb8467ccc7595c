#!/usr/bin/env python3
"""Writes tests/data/minicpmv45-tiny: a MiniCPM-V 4.5-layout checkpoint at toy size.

MiniCPM-V 4.5 keeps 2.6's vision tower, resampler (for still pictures), slicing and
placeholders, and swaps the language model for Qwen3 (per-head q/k RMSNorm, explicit
head_dim, no biases) with a Qwen3-style chat template that ends the prompt with an empty
<think></think> block when chat() runs without thinking (docs/models.md). So this folder
takes vpm.* and resampler.* byte for byte from minicpmv26-tiny (whose references then
still hold for the picture path) and adds a random Qwen3 LLM under llm.*.

No transformers reference exists for it: tests check the shared vision path against the
2.6 goldens, the prompt against the 4.5 template, and the LLM against a plain Qwen3
checkpoint holding the same weights (the test writes it from llm.* at run time).

Pure Python (no numpy, no torch): python3 tools/make_minicpmv45_tiny.py
"""
import json
import os
import random
import shutil
import struct
import sys

from safetensors_file import read_safetensors, write_safetensors  # tools/safetensors_file.py

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "tests", "data")
SRC = os.path.join(DATA, "minicpmv26-tiny")
DST = os.path.join(DATA, "minicpmv45-tiny")

HIDDEN, LAYERS, HEADS, KV_HEADS, HEAD_DIM, FFN = 256, 2, 4, 2, 32, 384
THINK = ["<think>", "</think>"]


def bf16(values):
    out = bytearray()
    for v in values:
        bits = struct.unpack("<I", struct.pack("<f", v))[0]
        bits += 0x7FFF + ((bits >> 16) & 1)   # round to nearest even
        out += struct.pack("<H", (bits >> 16) & 0xFFFF)
    return bytes(out)


def main():
    rng = random.Random(45)
    src = read_safetensors(os.path.join(SRC, "model.safetensors"))
    with open(os.path.join(SRC, "tokenizer.json")) as f:
        tok = json.load(f)
    next_id = max(t["id"] for t in tok["added_tokens"]) + 1
    for i, s in enumerate(THINK):   # ordinary added tokens in 4.5 (special: false)
        tok["added_tokens"].append({"id": next_id + i, "content": s, "single_word": False, "lstrip": False,
                                    "rstrip": False, "normalized": False, "special": False})
    vocab = next_id + len(THINK)

    def mat(rows, cols, scale=0.05):
        return ("BF16", [rows, cols], bf16(rng.gauss(0.0, scale) for _ in range(rows * cols)))

    def norm(n):   # drawn away from 1 so that a missing norm shows
        return ("BF16", [n], bf16(1.0 + rng.uniform(-0.3, 0.3) for _ in range(n)))

    llm = {"model.embed_tokens.weight": mat(vocab, HIDDEN, 0.5), "model.norm.weight": norm(HIDDEN),
           "lm_head.weight": mat(vocab, HIDDEN)}
    for l in range(LAYERS):
        p = "model.layers.%d." % l
        llm[p + "input_layernorm.weight"] = norm(HIDDEN)
        llm[p + "post_attention_layernorm.weight"] = norm(HIDDEN)
        llm[p + "self_attn.q_proj.weight"] = mat(HEADS * HEAD_DIM, HIDDEN)
        llm[p + "self_attn.k_proj.weight"] = mat(KV_HEADS * HEAD_DIM, HIDDEN)
        llm[p + "self_attn.v_proj.weight"] = mat(KV_HEADS * HEAD_DIM, HIDDEN)
        llm[p + "self_attn.o_proj.weight"] = mat(HIDDEN, HEADS * HEAD_DIM)
        llm[p + "self_attn.q_norm.weight"] = norm(HEAD_DIM)
        llm[p + "self_attn.k_norm.weight"] = norm(HEAD_DIM)
        llm[p + "mlp.gate_proj.weight"] = mat(FFN, HIDDEN)
        llm[p + "mlp.up_proj.weight"] = mat(FFN, HIDDEN)
        llm[p + "mlp.down_proj.weight"] = mat(HIDDEN, FFN)

    with open(os.path.join(SRC, "config.json")) as f:
        cfg = json.load(f)
    qwen3 = {"hidden_size": HIDDEN, "intermediate_size": FFN, "num_attention_heads": HEADS,
             "num_hidden_layers": LAYERS, "num_key_value_heads": KV_HEADS, "head_dim": HEAD_DIM,
             "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "max_position_embeddings": 4096,
             "vocab_size": vocab, "tie_word_embeddings": False, "attention_bias": False,
             "hidden_act": "silu", "torch_dtype": "bfloat16"}
    cfg.update(qwen3)
    cfg.update({"version": 4.5, "batch_3d_resampler": True})
    cfg.pop("use_sliding_window", None)

    shutil.rmtree(DST, ignore_errors=True)
    os.makedirs(DST)
    tensors = {k: v for k, v in src.items() if k.startswith(("vpm.", "resampler."))}
    tensors.update({"llm." + k: v for k, v in llm.items()})
    write_safetensors(os.path.join(DST, "model.safetensors"), tensors)
    with open(os.path.join(DST, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    with open(os.path.join(DST, "tokenizer.json"), "w") as f:
        json.dump(tok, f, ensure_ascii=False)
    for name in ("preprocessor_config.json", "generation_config.json"):
        shutil.copy(os.path.join(SRC, name), os.path.join(DST, name))
    # 4.5's chat template has the Qwen3 shape; its generation-prompt tail is what matters here.
    template = (
        "{%- if messages[0].role == 'system' %}{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}"
        "{%- endif %}{%- for message in messages %}{%- if message.role == 'user' %}"
        "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
        "{%- elif message.role == 'assistant' %}{%- set reasoning_content = '' %}"
        "{%- if '</think>' in message.content %}{%- set reasoning_content = message.content.split('</think>')[0] %}"
        "{%- endif %}{{- '<|im_start|>assistant\\n' + message.content + '<|im_end|>\\n' }}{%- endif %}{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
        "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
        "{%- if enable_thinking is defined and enable_thinking is true %}{{- '<think>\\n' }}{%- endif %}{%- endif %}")
    with open(os.path.join(SRC, "tokenizer_config.json")) as f:
        tcfg = json.load(f)
    tcfg["chat_template"] = template
    for i, s in enumerate(THINK):
        tcfg.setdefault("added_tokens_decoder", {})[str(next_id + i)] = {
            "content": s, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": False}
    with open(os.path.join(DST, "tokenizer_config.json"), "w") as f:
        json.dump(tcfg, f, indent=1, ensure_ascii=False)
    print("wrote", DST, "(vocab %d)" % vocab, file=sys.stderr)


if __name__ == "__main__":
    main()
