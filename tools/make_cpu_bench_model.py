#!/usr/bin/python3
"""Writes the CPU benchmark's model (bench/run_cpu_bench.sh): random weights shaped like
Qwen2-0.5B (hidden 896, 24 layers, 14 heads, 2 KV heads, intermediate 4864, vocab 151936,
tied embeddings), as the same weights in both engines' formats:

    OUT/config.json, model.safetensors (bf16), tokenizer.json, tokenizer_config.json
        a Hugging Face Qwen2 checkpoint, what omnid loads;
    OUT/model-f32.gguf, model-bf16.gguf, model-q8_0.gguf
        for llama.cpp (tools/gguf_writer.py), the bf16 values widened exactly (f32), as
        they are (bf16), and quantized by ggml's Q8_0 rule, which is also the rule omnid's
        --cpu-weights int8 applies at load (kernels/dtype.h), so both engines multiply the
        same int8 blocks. Norm weights and biases stay f32 in every GGUF, as llama.cpp's
        converter keeps 1-D tensors.

    /usr/bin/python3 tools/make_cpu_bench_model.py OUT [--layers N]

The weights are seeded N(0, 0.02) (norm weights 1 + N(0, 0.02)), rounded to bf16 once and
written chunk by chunk to all four files, so memory stays at a few chunks. The tokenizer is
the Qwen3 one the test-data cache holds (.cache/testdata/qwen3, scripts/fetch_test_data.sh):
the same byte-level BPE vocabulary and merges as Qwen2's, with a few more added tokens;
the GGUF vocabulary is padded to vocab_size with unused [PAD<id>] tokens, as llama.cpp's
converter does. Token ids are all a benchmark needs, but llama.cpp refuses a GGUF
without a vocabulary.
"""
import argparse
import json
import pathlib
import shutil
import struct
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import gguf_writer as gw  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
TOKENIZER_DIR = ROOT / ".cache" / "testdata" / "qwen3"

HIDDEN, FFN, HEADS, KV_HEADS, VOCAB = 896, 4864, 14, 2, 151936
HEAD_DIM = HIDDEN // HEADS
CONTEXT = 32768
ROPE_THETA, RMS_EPS = 1e6, 1e-6
EOS_ID = 151643                        # <|endoftext|>, Qwen2's bos/eos/pad
CHUNK_VALUES = 1 << 22                 # values generated and written at a time

# llama.cpp's token types (llama-vocab.h): normal, control (special added tokens),
# user-defined (other added tokens), unused (padding).
TOKEN_NORMAL, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED = 1, 3, 4, 5
# llama.cpp's general.file_type (llama_ftype) for each weight type.
FILE_TYPE = {gw.GGML_F32: 0, gw.GGML_BF16: 32, gw.GGML_Q8_0: 7}


def tensors(layers):
    """(Hugging Face name, GGUF name, numpy shape, kind) in file order; kind is
    'matrix', 'norm' or 'bias'. Tied embeddings: no lm_head / output.weight."""
    out = [("model.embed_tokens.weight", "token_embd.weight", (VOCAB, HIDDEN), "matrix")]
    q, kv = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM
    for l in range(layers):
        hf, gg = f"model.layers.{l}.", f"blk.{l}."
        out += [
            (hf + "input_layernorm.weight", gg + "attn_norm.weight", (HIDDEN,), "norm"),
            (hf + "self_attn.q_proj.weight", gg + "attn_q.weight", (q, HIDDEN), "matrix"),
            (hf + "self_attn.q_proj.bias", gg + "attn_q.bias", (q,), "bias"),
            (hf + "self_attn.k_proj.weight", gg + "attn_k.weight", (kv, HIDDEN), "matrix"),
            (hf + "self_attn.k_proj.bias", gg + "attn_k.bias", (kv,), "bias"),
            (hf + "self_attn.v_proj.weight", gg + "attn_v.weight", (kv, HIDDEN), "matrix"),
            (hf + "self_attn.v_proj.bias", gg + "attn_v.bias", (kv,), "bias"),
            (hf + "self_attn.o_proj.weight", gg + "attn_output.weight", (HIDDEN, q), "matrix"),
            (hf + "post_attention_layernorm.weight", gg + "ffn_norm.weight", (HIDDEN,), "norm"),
            (hf + "mlp.gate_proj.weight", gg + "ffn_gate.weight", (FFN, HIDDEN), "matrix"),
            (hf + "mlp.up_proj.weight", gg + "ffn_up.weight", (FFN, HIDDEN), "matrix"),
            (hf + "mlp.down_proj.weight", gg + "ffn_down.weight", (HIDDEN, FFN), "matrix"),
        ]
    out.append(("model.norm.weight", "output_norm.weight", (HIDDEN,), "norm"))
    return out


def hf_config(layers):
    return {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_act": "silu",
        "hidden_size": HIDDEN, "intermediate_size": FFN, "num_hidden_layers": layers,
        "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS, "vocab_size": VOCAB,
        "max_position_embeddings": CONTEXT, "rope_theta": ROPE_THETA, "rms_norm_eps": RMS_EPS,
        "tie_word_embeddings": True, "torch_dtype": "bfloat16", "bos_token_id": EOS_ID,
        "eos_token_id": EOS_ID, "use_sliding_window": False, "sliding_window": None,
        "max_window_layers": layers, "attention_dropout": 0.0, "initializer_range": 0.02,
    }


class SafetensorsWriter:
    """A bf16 model.safetensors written tensor by tensor, chunk by chunk."""

    def __init__(self, path, specs):
        header, off = {"__metadata__": {"format": "pt"}}, 0
        for name, shape in specs:
            n = int(np.prod(shape)) * 2
            header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + n]}
            off += n
        blob = json.dumps(header, separators=(",", ":")).encode()
        blob += b" " * (-len(blob) % 8)
        self.f = open(path, "wb")
        self.f.write(struct.pack("<Q", len(blob)) + blob)

    def write(self, bf16_bits):
        self.f.write(bf16_bits.astype("<u2").tobytes())

    def close(self):
        self.f.close()


def gguf_vocab():
    tok = json.loads((TOKENIZER_DIR / "tokenizer.json").read_text(encoding="utf-8"))
    tokens, types = [None] * VOCAB, [TOKEN_UNUSED] * VOCAB
    for text, i in tok["model"]["vocab"].items():
        tokens[i], types[i] = text, TOKEN_NORMAL
    for a in tok.get("added_tokens", []):
        tokens[a["id"]], types[a["id"]] = a["content"], TOKEN_CONTROL if a["special"] else TOKEN_USER_DEFINED
    for i, t in enumerate(tokens):
        if t is None:
            tokens[i] = f"[PAD{i}]"
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    return tokens, types, merges


def gguf_metadata(w, layers, weight_type, vocab):
    tokens, types, merges = vocab
    w.add_string("general.architecture", "qwen2")
    w.add_string("general.name", "omnid cpu bench (random Qwen2-0.5B shape)")
    w.add_uint32("general.file_type", FILE_TYPE[weight_type])
    if weight_type == gw.GGML_Q8_0:
        w.add_uint32("general.quantization_version", 2)
    w.add_uint32("qwen2.context_length", CONTEXT)
    w.add_uint32("qwen2.embedding_length", HIDDEN)
    w.add_uint32("qwen2.block_count", layers)
    w.add_uint32("qwen2.feed_forward_length", FFN)
    w.add_uint32("qwen2.attention.head_count", HEADS)
    w.add_uint32("qwen2.attention.head_count_kv", KV_HEADS)
    w.add_float32("qwen2.rope.freq_base", ROPE_THETA)
    w.add_float32("qwen2.attention.layer_norm_rms_epsilon", RMS_EPS)
    w.add_string("tokenizer.ggml.model", "gpt2")
    w.add_string("tokenizer.ggml.pre", "qwen2")
    w.add_array("tokenizer.ggml.tokens", tokens, gw.STRING)
    w.add_array("tokenizer.ggml.token_type", types, gw.INT32)
    w.add_array("tokenizer.ggml.merges", merges, gw.STRING)
    w.add_uint32("tokenizer.ggml.eos_token_id", EOS_ID)
    w.add_uint32("tokenizer.ggml.padding_token_id", EOS_ID)
    w.add_uint32("tokenizer.ggml.bos_token_id", EOS_ID)
    w.add_bool("tokenizer.ggml.add_bos_token", False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=pathlib.Path)
    ap.add_argument("--layers", type=int, default=24, help="decoder layers (24 as Qwen2-0.5B; fewer for a quick try)")
    ap.add_argument("--seed", type=int, default=19)
    args = ap.parse_args()
    for f in ("tokenizer.json", "tokenizer_config.json"):
        if not (TOKENIZER_DIR / f).is_file():
            sys.exit(f"make_cpu_bench_model: {TOKENIZER_DIR / f} missing (run scripts/fetch_test_data.sh)")
    t0 = time.time()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(hf_config(args.layers), indent=2) + "\n")
    (out / "generation_config.json").write_text(json.dumps({"bos_token_id": EOS_ID, "eos_token_id": EOS_ID}) + "\n")
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(TOKENIZER_DIR / f, out / f)

    specs = tensors(args.layers)
    st = SafetensorsWriter(out / "model.safetensors", [(hf, shape) for hf, _, shape, _ in specs])
    vocab = gguf_vocab()
    ggufs = []
    for suffix, matrix_type in (("f32", gw.GGML_F32), ("bf16", gw.GGML_BF16), ("q8_0", gw.GGML_Q8_0)):
        w = gw.GGUFWriter(out / f"model-{suffix}.gguf")
        gguf_metadata(w, args.layers, matrix_type, vocab)
        for _, name, shape, kind in specs:
            w.add_tensor(name, shape, matrix_type if kind == "matrix" else gw.GGML_F32)
        w.write_header()
        ggufs.append(w)

    for i, (_, name, shape, kind) in enumerate(specs):
        rng = np.random.default_rng([args.seed, i])
        cols = shape[-1]
        rows = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
        step = max(1, CHUNK_VALUES // cols)
        for r in range(0, rows, step):
            n = min(step, rows - r)
            x = rng.standard_normal((n, cols), dtype=np.float32) * np.float32(0.02)
            if kind == "norm":
                x += np.float32(1.0)
            bits = gw.f32_to_bf16_bits(x)                 # the released bf16 weights ...
            st.write(bits)
            same = (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)   # ... exactly, as f32
            for w in ggufs:
                w.write_rows(name, same if len(shape) > 1 else same.reshape(-1))
    st.close()
    for w in ggufs:
        w.close()
    sizes = ", ".join(f"{p.name} {p.stat().st_size / 2**20:.0f} MiB" for p in sorted(out.iterdir()) if p.suffix in (".gguf", ".safetensors"))
    print(f"make_cpu_bench_model: {out} ({args.layers} layers) in {time.time() - t0:.0f} s: {sizes}")


if __name__ == "__main__":
    main()
