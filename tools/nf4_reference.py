#!/usr/bin/python3
"""bitsandbytes NF4 weights, written and dequantized independently of the engine (torch).

As a program it writes tests/data/nf4-blocks: a checkpoint folder whose model.safetensors
holds NF4 weights in transformers' save format (daemon/checkpoint/bnb_nf4.h) made of random
codes and scales, plain and nested ("double quant"), with ragged last blocks and an odd
element count, in bfloat16, float16 and float32, and next to it <weight>.npy: every element
dequantized by the formula below, as float32 (exact for all three dtypes). The engine's
dequantization must equal it bit for bit (tests/checkpoint/test_nf4.cpp).

The formula (bitsandbytes' dequantize_4bit and dequantize_blockwise, float32 throughout):
  code i  = high nibble of byte i//2 for even i, low nibble for odd i
  scale b = absmax[b], or nested: nested_quant_map[absmax_u8[b]] * nested_absmax[b // nested_blocksize]
            + nested_offset (a product, then a sum)
  w[i]    = quant_map[code i] * scale[i // blocksize], rounded once to dtype

As a module it gives tools/make_nf4_tiny.py the quantizer and the safetensors files.

Run with /usr/bin/python3 (torch 1.13): /usr/bin/python3 tools/nf4_reference.py
"""
import json
import math
import os

import numpy as np
import torch

from safetensors_file import write_safetensors  # tools/safetensors_file.py

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "tests", "data")

# bitsandbytes' get_4bit_type("nf4"): the values stored as quant_map.
NF4 = [
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]
TORCH_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
ST_DTYPES = {torch.bfloat16: "BF16", torch.float16: "F16", torch.float32: "F32", torch.uint8: "U8"}
NESTED_BLOCKSIZE = 256   # what bitsandbytes' quantize_4bit uses for the scales


def nested_code_table():
    """A signed 256-entry table in [-1, 1] with 0 and 1 in it, sorted: the role of
    bitsandbytes' dynamic map (its exact values do not matter here, the file carries them)."""
    pos = [10.0 ** (-6 + 6 * k / 126) for k in range(127)]   # 1e-6 .. 1, log-spaced
    vals = sorted([-v for v in pos] + [0.0] + pos + [0.0])
    return torch.tensor(vals, dtype=torch.float32)


# ---- safetensors files (no safetensors package with this python) ----

def tensor_entry(t):
    """(safetensors dtype, shape, bytes) of a contiguous torch tensor."""
    t = t.contiguous()
    raw = t.view(torch.int16) if t.dtype == torch.bfloat16 else t
    return ST_DTYPES[t.dtype], list(t.shape), raw.numpy().tobytes()


def to_torch(entry):
    dtype, shape, data = entry
    if dtype == "BF16":
        return torch.from_numpy(np.frombuffer(data, dtype=np.int16).copy()).view(torch.bfloat16).reshape(shape)
    np_dtype = {"F16": np.float16, "F32": np.float32, "U8": np.uint8}[dtype]
    return torch.from_numpy(np.frombuffer(data, dtype=np_dtype).copy()).reshape(shape)


# ---- the save format: QuantState.as_dict(packed=True) ----

def nf4_entries(name, packed, absmax, blocksize, shape, dtype, nested=None):
    """The tensors of NF4 weight `name`. nested: (absmax_u8 codes, nested_absmax, offset)."""
    state = {"quant_type": "nf4", "blocksize": blocksize, "dtype": dtype, "shape": list(shape)}
    out = {name: tensor_entry(packed.reshape(-1, 1)),
           name + ".quant_map": tensor_entry(torch.tensor(NF4, dtype=torch.float32))}
    if nested is None:
        out[name + ".absmax"] = tensor_entry(absmax)
    else:
        codes, nested_absmax, offset = nested
        out[name + ".absmax"] = tensor_entry(codes)
        out[name + ".nested_absmax"] = tensor_entry(nested_absmax)
        out[name + ".nested_quant_map"] = tensor_entry(nested_code_table())
        state.update({"nested_blocksize": NESTED_BLOCKSIZE, "nested_dtype": "float32", "nested_offset": float(offset)})
    out[name + ".quant_state.bitsandbytes__nf4"] = tensor_entry(
        torch.tensor(list(json.dumps(state).encode()), dtype=torch.uint8))
    return out


# ---- the formula ----

def dequantize(tensors, name):
    """NF4 weight `name` of `tensors` (safetensors entries) as a torch tensor of its dtype."""
    state = json.loads(bytes(tensors[name + ".quant_state.bitsandbytes__nf4"][2]).decode())
    shape, bs = state["shape"], state["blocksize"]
    n = math.prod(shape)
    packed = to_torch(tensors[name]).reshape(-1).long()
    codes = torch.stack([packed >> 4, packed & 15], dim=1).reshape(-1)[:n]
    quant_map = to_torch(tensors[name + ".quant_map"])
    if "nested_offset" in state:
        q = to_torch(tensors[name + ".absmax"]).long()
        table = to_torch(tensors[name + ".nested_quant_map"])
        scales2 = to_torch(tensors[name + ".nested_absmax"]).repeat_interleave(state["nested_blocksize"])[:q.numel()]
        absmax = table[q] * scales2
        absmax = absmax + torch.tensor(state["nested_offset"], dtype=torch.float32)
    else:
        absmax = to_torch(tensors[name + ".absmax"])
    scale = absmax.repeat_interleave(bs)[:n]
    return (quant_map[codes] * scale).to(TORCH_DTYPES[state["dtype"]]).reshape(shape)


def quantize(w, blocksize=64, nested=False):
    """NF4 codes of float tensor `w` as bitsandbytes' quantize_4bit picks them (nearest NF4
    value of w / absmax per block), packed; with the scales, plain or nested."""
    flat = w.float().reshape(-1)
    n = flat.numel()
    blocks = -(-n // blocksize)
    padded = torch.nn.functional.pad(flat, (0, blocks * blocksize - n))
    absmax = padded.reshape(blocks, blocksize).abs().max(dim=1).values
    scaled = (padded.reshape(blocks, blocksize) / absmax.clamp_min(1e-30).unsqueeze(1)).reshape(-1)[:n]
    code = torch.tensor(NF4, dtype=torch.float32)
    idx = (scaled.unsqueeze(1) - code).abs().argmin(dim=1).to(torch.uint8)
    if n % 2:
        idx = torch.cat([idx, torch.zeros(1, dtype=torch.uint8)])
    packed = (idx[0::2] << 4) | idx[1::2]
    if not nested:
        return packed, absmax, None
    offset = absmax.mean()
    centred = absmax - offset
    nb = -(-blocks // NESTED_BLOCKSIZE)
    c = torch.nn.functional.pad(centred, (0, nb * NESTED_BLOCKSIZE - blocks)).reshape(nb, NESTED_BLOCKSIZE)
    absmax2 = c.abs().max(dim=1).values.clamp_min(1e-30)
    table = nested_code_table()
    q = ((c / absmax2.unsqueeze(1)).reshape(-1)[:blocks].unsqueeze(1) - table).abs().argmin(dim=1).to(torch.uint8)
    return packed, None, (q, absmax2, offset.item())


# ---- tests/data/nf4-blocks ----

CASES = [
    # name, shape, blocksize, dtype, nested
    ("plain.bf16.weight", [48, 40], 64, "bfloat16", False),         # whole blocks
    ("ragged.f16.weight", [37, 7], 64, "float16", False),            # last block of 3, odd count
    ("nested.bf16.weight", [96, 200], 64, "bfloat16", True),         # 300 scales: 2 nested blocks, the last ragged
    ("nested_ragged.f32.weight", [5, 77], 128, "float32", True),     # last block of 1, odd count
]


def random_case(gen, shape, blocksize, dtype, nested):
    n = math.prod(shape)
    blocks = -(-n // blocksize)
    packed = torch.randint(0, 256, ((n + 1) // 2,), generator=gen, dtype=torch.uint8)
    if not nested:
        # scales over six decades; float16 overflows to inf for the largest (as torch does)
        absmax = torch.exp(torch.empty(blocks).uniform_(math.log(1e-3), math.log(7e4), generator=gen)).float()
        return packed, absmax, None
    codes = torch.randint(0, 256, (blocks,), generator=gen, dtype=torch.uint8)
    nb = -(-blocks // NESTED_BLOCKSIZE)
    nested_absmax = torch.empty(nb).uniform_(0.01, 3.0, generator=gen).float()
    offset = float(torch.empty(1).uniform_(0.05, 2.0, generator=gen).float().item())
    return packed, None, (codes, nested_absmax, offset)


def main():
    out_dir = os.path.join(DATA, "nf4-blocks")
    os.makedirs(out_dir, exist_ok=True)
    gen = torch.Generator().manual_seed(17)
    tensors = {}
    for name, shape, bs, dtype, nested in CASES:
        packed, absmax, nest = random_case(gen, shape, bs, dtype, nested)
        tensors.update(nf4_entries(name, packed, absmax, bs, shape, dtype, nest))
    write_safetensors(os.path.join(out_dir, "model.safetensors"), tensors)
    for name, *_ in CASES:
        np.save(os.path.join(out_dir, name + ".npy"), dequantize(tensors, name).float().numpy())
    config = {"model_type": "nf4-blocks",
              "quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": True,
                                      "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True}}
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
