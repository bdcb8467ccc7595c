"""The safetensors reader and writer the test-data generators in tools/ share.

write_safetensors(path, tensors): tensors maps a name to (dtype, shape, raw little-endian bytes),
e.g. ("BF16", [4, 8], data). Tensors are laid out in name order, the header padded with spaces to
a multiple of 8 bytes and tagged {"format": "pt"}, as torch's safetensors.save_file writes them.
read_safetensors(path) gives the same mapping back (the metadata left out).
"""
import json
import struct


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        body = f.read()
    header.pop("__metadata__", None)
    return {k: (v["dtype"], v["shape"], body[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in header.items()}


def write_safetensors(path, tensors):
    header, off, chunks = {}, 0, []
    for name in sorted(tensors):
        dtype, shape, data = tensors[name]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(data)]}
        chunks.append(data)
        off += len(data)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for c in chunks:
            f.write(c)
