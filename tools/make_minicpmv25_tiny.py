#!/usr/bin/python3
"""Writes tests/data/minicpmv25-tiny: a MiniCPM-Llama3-V 2.5-layout checkpoint at toy size.

The release's own layout (openbmb/MiniCPM-Llama3-V-2_5: config.json, preprocessor_config.json,
tokenizer_config.json; docs/models.md): model_type "minicpmv", version "2.5" as a string,
Llama fields at the top level (no attention bias, rms_norm_eps 1e-5, rope_theta 5e5, untied
lm_head), query_num 96, vision_config of model_type "idefics2", tensors llm.model.*,
llm.lm_head.weight, vpm.*, resampler.* (bf16 here; the release ships float16). Sizes shrink
(LLM width 128, vision width 32, 2 layers each, scale_resolution 70) so that the folder stays
under 1 MB; 96 queries stay, they are what 2.5 changes.

The tokenizer is a small byte-level BPE shaped as Llama-3's tokenizer.json (its split regex,
ignore_merges, no normalizer, the BOS-adding TemplateProcessing post-processor; id 0 is "!"),
with 2.5's special tokens in Llama-3's order after the BPE vocabulary.

Two cases: case_wide (150x60, sliced) and case_small (50x40, one upscaled piece, and a "!"
in the question: id 0, which 2.5's generate() does not treat as padding). The goldens come
from tools/minicpmv25_reference.py, run at the end.

Usage: /usr/bin/python3 tools/make_minicpmv25_tiny.py
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
DST = os.path.join(HERE, "..", "tests", "data", "minicpmv25-tiny")
sys.path.insert(0, HERE)
from minicpmv25_reference import bytes_to_unicode  # noqa: E402
from safetensors_file import write_safetensors  # noqa: E402  tools/safetensors_file.py

HIDDEN, LAYERS, HEADS, KV_HEADS, FFN = 128, 2, 4, 2, 64
V_HIDDEN, V_LAYERS, V_HEADS, V_FFN, V_IMAGE, PATCH = 32, 2, 2, 64, 140, 14
QUERY = 96
WORDS = ["user", "assistant", "\u010a\u010a", "What", "\u0120is", "\u0120in", "\u0120the", "\u0120picture",
         "Describe", "\u0120it", "\u0120a", "\u0120cat"]
# Llama-3's special tokens 128000.. in order, as far as MiniCPM-Llama3-V 2.5 names them.
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<unk>", "<|reserved_special_token_1|>",
            "<|reserved_special_token_2|>", "<|reserved_special_token_3|>", "<|start_header_id|>",
            "<|end_header_id|>", "<|reserved_special_token_4|>", "<|eot_id|>", "<image>", "</image>", "<ref>",
            "</ref>", "<box>", "</box>", "<quad>", "</quad>", "<point>", "</point>", "<slice>", "</slice>"]
# The release's chat_template (tokenizer_config.json of openbmb/MiniCPM-Llama3-V-2_5).
TEMPLATE = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
            "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + "
            "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
            "{{ content }}{% endfor %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}")
SPLIT = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
         "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")


def bf16_bytes(a):
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16   # round to nearest even
    return bits.astype(np.uint16).tobytes()


def write_bf16_safetensors(path, arrays):
    write_safetensors(path, {name: ("BF16", list(a.shape), bf16_bytes(a)) for name, a in arrays.items()})


def tokenizer():
    vocab = {ch: i for i, ch in enumerate(bytes_to_unicode().values())}   # id 0 is "!", as in Llama-3
    merges = []
    for w in WORDS:
        for k in range(2, len(w) + 1):
            if w[:k] not in vocab:
                merges.append(w[:k - 1] + " " + w[k - 1])
                vocab[w[:k]] = len(vocab)
    added = [{"id": len(vocab) + i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, s in enumerate(SPECIALS)]
    bos = added[0]["id"]
    tok = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": SPLIT}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                      {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [bos],
                                                      "tokens": ["<|begin_of_text|>"]}}}]},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
                  "vocab": vocab, "merges": merges},
    }
    tcfg = {
        "added_tokens_decoder": {str(a["id"]): {k: a[k] for k in ("content", "lstrip", "normalized", "rstrip",
                                                                 "single_word", "special")} for a in added},
        "bos_token": "<|begin_of_text|>", "chat_template": TEMPLATE, "clean_up_tokenization_spaces": True,
        "eos_token": "<|end_of_text|>", "model_input_names": ["input_ids", "attention_mask"], "pad_token": "!",
        "padding_side": "right", "tokenizer_class": "MiniCPMVTokenizerFast", "truncation_side": "right",
        "unk_token": "<unk>",
    }
    return tok, tcfg, len(vocab) + len(SPECIALS), {s: len(vocab) + i for i, s in enumerate(SPECIALS)}


def weights(rng, vocab):
    def mat(*shape, scale=0.05):
        return rng.normal(0.0, scale, shape).astype(np.float32)

    def norm(n):   # away from 1 (and biases away from 0) so that a missing one shows
        return (1.0 + rng.uniform(-0.3, 0.3, n)).astype(np.float32)

    def bias(n):
        return rng.uniform(-0.1, 0.1, n).astype(np.float32)

    hd = HIDDEN // HEADS
    t = {"llm.model.embed_tokens.weight": mat(vocab, HIDDEN, scale=0.5), "llm.model.norm.weight": norm(HIDDEN),
         "llm.lm_head.weight": mat(vocab, HIDDEN)}
    for l in range(LAYERS):
        p = "llm.model.layers.%d." % l
        t[p + "input_layernorm.weight"] = norm(HIDDEN)
        t[p + "post_attention_layernorm.weight"] = norm(HIDDEN)
        t[p + "self_attn.q_proj.weight"] = mat(HEADS * hd, HIDDEN)
        t[p + "self_attn.k_proj.weight"] = mat(KV_HEADS * hd, HIDDEN)
        t[p + "self_attn.v_proj.weight"] = mat(KV_HEADS * hd, HIDDEN)
        t[p + "self_attn.o_proj.weight"] = mat(HIDDEN, HEADS * hd)
        t[p + "mlp.gate_proj.weight"] = mat(FFN, HIDDEN)
        t[p + "mlp.up_proj.weight"] = mat(FFN, HIDDEN)
        t[p + "mlp.down_proj.weight"] = mat(HIDDEN, FFN)
    t["vpm.embeddings.patch_embedding.weight"] = mat(V_HIDDEN, 3, PATCH, PATCH)
    t["vpm.embeddings.patch_embedding.bias"] = bias(V_HIDDEN)
    t["vpm.embeddings.position_embedding.weight"] = mat((V_IMAGE // PATCH) ** 2, V_HIDDEN, scale=0.5)
    for l in range(V_LAYERS):
        p = "vpm.encoder.layers.%d." % l
        for n in ("q", "k", "v", "out"):
            t[p + "self_attn.%s_proj.weight" % n] = mat(V_HIDDEN, V_HIDDEN, scale=0.15)
            t[p + "self_attn.%s_proj.bias" % n] = bias(V_HIDDEN)
        for n in ("layer_norm1", "layer_norm2"):
            t[p + n + ".weight"] = norm(V_HIDDEN)
            t[p + n + ".bias"] = bias(V_HIDDEN)
        t[p + "mlp.fc1.weight"] = mat(V_FFN, V_HIDDEN, scale=0.15)
        t[p + "mlp.fc1.bias"] = bias(V_FFN)
        t[p + "mlp.fc2.weight"] = mat(V_HIDDEN, V_FFN, scale=0.15)
        t[p + "mlp.fc2.bias"] = bias(V_HIDDEN)
    t["vpm.post_layernorm.weight"] = norm(V_HIDDEN)
    t["vpm.post_layernorm.bias"] = bias(V_HIDDEN)
    t["resampler.query"] = mat(QUERY, HIDDEN, scale=0.5)
    t["resampler.kv_proj.weight"] = mat(HIDDEN, V_HIDDEN, scale=0.15)
    t["resampler.attn.in_proj_weight"] = mat(3 * HIDDEN, HIDDEN, scale=0.1)
    t["resampler.attn.in_proj_bias"] = bias(3 * HIDDEN)
    t["resampler.attn.out_proj.weight"] = mat(HIDDEN, HIDDEN, scale=0.1)
    t["resampler.attn.out_proj.bias"] = bias(HIDDEN)
    for n in ("ln_q", "ln_kv", "ln_post"):
        t["resampler.%s.weight" % n] = norm(HIDDEN)
        t["resampler.%s.bias" % n] = bias(HIDDEN)
    t["resampler.proj"] = mat(HIDDEN, HIDDEN, scale=0.1)
    return t


def picture(w, h, seed):
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.random.default_rng(seed).integers(0, 60, (h, w))
    a = np.stack([(x / w) * 200 + r, (y / h) * 180 + (x % 7) * 8, ((x + y) % 23) * 10], axis=-1)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB")


def main():
    rng = np.random.default_rng(25)
    tok, tcfg, vocab, ids = tokenizer()
    cfg = {
        "_name_or_path": "openbmb/MiniCPM-Llama3-V-2_5", "version": "2.5", "architectures": ["MiniCPMV"],
        "attention_bias": False, "attention_dropout": 0.0,
        "auto_map": {"AutoConfig": "configuration_minicpm.MiniCPMVConfig", "AutoModel": "modeling_minicpmv.MiniCPMV",
                     "AutoModelForCausalLM": "modeling_minicpmv.MiniCPMV"},
        "batch_vision_input": True, "bos_token_id": ids["<|begin_of_text|>"], "drop_vision_last_layer": False,
        "eos_token_id": ids["<|end_of_text|>"], "hidden_act": "silu", "hidden_size": HIDDEN, "image_size": 70,
        "initializer_range": 0.02, "intermediate_size": FFN, "max_position_embeddings": 8192,
        "mm_use_im_start_end": True, "model_type": "minicpmv", "num_attention_heads": HEADS,
        "num_hidden_layers": LAYERS, "num_key_value_heads": KV_HEADS, "patch_size": PATCH, "pretraining_tp": 1,
        "query_num": QUERY, "rms_norm_eps": 1e-05, "rope_scaling": None, "rope_theta": 500000.0,
        "slice_config": {"max_slice_nums": 9, "patch_size": PATCH, "scale_resolution": 70, "model_type": "minicpmv"},
        "slice_mode": True, "tie_word_embeddings": False, "torch_dtype": "bfloat16", "transformers_version": "4.40.0",
        "use_cache": False,
        "vision_config": {"hidden_size": V_HIDDEN, "image_size": V_IMAGE, "intermediate_size": V_FFN,
                          "model_type": "idefics2", "num_attention_heads": V_HEADS, "num_hidden_layers": V_LAYERS,
                          "patch_size": PATCH},
        "vocab_size": vocab,
    }
    pre = {
        "image_processor_type": "MiniCPMVImageProcessor",
        "auto_map": {"AutoProcessor": "processing_minicpmv.MiniCPMVProcessor",
                     "AutoImageProcessor": "image_processing_minicpmv.MiniCPMVImageProcessor"},
        "processor_class": "MiniCPMVProcessor", "max_slice_nums": 9, "scale_resolution": 70, "patch_size": PATCH,
        "image_feature_size": QUERY, "im_start": "<image>", "im_end": "</image>", "slice_start": "<slice>",
        "slice_end": "</slice>", "unk": "<unk>", "norm_mean": [0.5, 0.5, 0.5], "norm_std": [0.5, 0.5, 0.5],
        "version": 2.5,
    }
    shutil.rmtree(DST, ignore_errors=True)
    os.makedirs(DST)
    write_bf16_safetensors(os.path.join(DST, "model.safetensors"), weights(rng, vocab))
    for name, obj in (("config.json", cfg), ("preprocessor_config.json", pre), ("tokenizer_config.json", tcfg),
                      ("generation_config.json", {"bos_token_id": cfg["bos_token_id"],
                                                  "eos_token_id": cfg["eos_token_id"]})):
        with open(os.path.join(DST, name), "w") as f:
            json.dump(obj, f, indent=1, ensure_ascii=False)
    with open(os.path.join(DST, "tokenizer.json"), "w") as f:
        json.dump(tok, f, ensure_ascii=False)
    for case, (w, h), q in (("case_wide", (150, 60), "What is in the picture?"), ("case_small", (50, 40), "Describe it!")):
        os.makedirs(os.path.join(DST, case))
        picture(w, h, len(case)).save(os.path.join(DST, case, "image.png"))
        with open(os.path.join(DST, case, "question.txt"), "w") as f:
            f.write(q)
    subprocess.check_call([sys.executable, os.path.join(HERE, "minicpmv25_reference.py"), DST])
    print("wrote", DST, "(vocab %d)" % vocab, file=sys.stderr)


if __name__ == "__main__":
    main()
