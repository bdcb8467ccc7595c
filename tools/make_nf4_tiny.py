#!/usr/bin/python3
"""Writes tests/data/qwen2-tiny-nf4 and its twin tests/data/qwen2-tiny-nf4-twin.

qwen2-tiny-nf4 is tests/data/qwen2-tiny saved as transformers + bitsandbytes save a 4-bit
release (openbmb/MiniCPM-V-2_6-int4 is one): every linear weight of the decoder layers NF4
(layers 0 and 1 nested, "double quant", as the releases are; layer 2 plain), blocksize 64;
what such a release leaves unquantized (biases, norms, the embeddings, and lm_head, named in
llm_int8_skip_modules) stays bf16 byte for byte, and config.json carries the
quantization_config.

qwen2-tiny-nf4-twin holds the same weights already dequantized to bf16
(tools/nf4_reference.py's formula): a plain bf16 checkpoint. Loading one and the other must
give the same logits and the same greedy answers (tests/model/test_nf4_model.cpp).

Run with /usr/bin/python3 (torch 1.13): /usr/bin/python3 tools/make_nf4_tiny.py
"""
import json
import os
import shutil

import nf4_reference as ref
from safetensors_file import read_safetensors, write_safetensors  # tools/safetensors_file.py

SRC = os.path.join(ref.DATA, "qwen2-tiny")
NF4_DIR = os.path.join(ref.DATA, "qwen2-tiny-nf4")
TWIN_DIR = os.path.join(ref.DATA, "qwen2-tiny-nf4-twin")
LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
NESTED_LAYERS = (0, 1)


def quantized_names(tensors):
    out = []
    for name in tensors:
        parts = name.split(".")
        if len(parts) == 6 and parts[:2] == ["model", "layers"] and parts[-1] == "weight":
            if ".".join(parts[3:5]) in LINEARS:
                out.append((name, int(parts[2])))
    return sorted(out)


def main():
    src = read_safetensors(os.path.join(SRC, "model.safetensors"))
    nf4, twin = dict(src), dict(src)
    for name, layer in quantized_names(src):
        w = ref.to_torch(src[name])
        packed, absmax, nested = ref.quantize(w, blocksize=64, nested=layer in NESTED_LAYERS)
        entries = ref.nf4_entries(name, packed, absmax, 64, list(w.shape), "bfloat16", nested)
        del nf4[name]
        nf4.update(entries)
        twin[name] = ref.tensor_entry(ref.dequantize(entries, name))

    with open(os.path.join(SRC, "config.json")) as f:
        config = json.load(f)
    for d in (NF4_DIR, TWIN_DIR):
        os.makedirs(d, exist_ok=True)
        shutil.copy(os.path.join(SRC, "generation_config.json"), d)
    with open(os.path.join(TWIN_DIR, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    # As bitsandbytes' BitsAndBytesConfig.to_dict writes it for such a release.
    config["quantization_config"] = {
        "_load_in_4bit": True, "_load_in_8bit": False, "bnb_4bit_compute_dtype": "bfloat16",
        "bnb_4bit_quant_storage": "uint8", "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True,
        "llm_int8_enable_fp32_cpu_offload": False, "llm_int8_has_fp16_weight": False,
        "llm_int8_skip_modules": ["lm_head"], "llm_int8_threshold": 6.0, "load_in_4bit": True,
        "load_in_8bit": False, "quant_method": "bitsandbytes"}
    with open(os.path.join(NF4_DIR, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    write_safetensors(os.path.join(NF4_DIR, "model.safetensors"), nf4)
    write_safetensors(os.path.join(TWIN_DIR, "model.safetensors"), twin)


if __name__ == "__main__":
    main()
