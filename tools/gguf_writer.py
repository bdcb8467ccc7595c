"""A minimal GGUF v3 writer, enough to hand llama.cpp the benchmark's model
(tools/make_cpu_bench_model.py): typed metadata key/values, then tensors in F32, F16,
BF16 or Q8_0, streamed so that a large model never sits in memory.

Layout (ggml's docs/gguf.md): magic "GGUF", version u32 = 3, tensor count u64, metadata
count u64; each key/value as key string, value type u32, value; each tensor's info as
name string, n_dims u32, dims u64 (innermost first, i.e. numpy's shape reversed), ggml
type u32, offset u64 (from the start of the data section, a multiple of the alignment);
then padding to the alignment and the tensor data, each tensor padded to the alignment.
Strings are a u64 byte length and UTF-8 bytes; arrays an element type u32, a count u64
and the elements. Everything little-endian.

Usage:
    w = GGUFWriter(path)
    w.add_string("general.architecture", "qwen2"); w.add_uint32(...); ...
    w.add_tensor("token_embd.weight", (vocab, hidden), GGML_Q8_0)   # numpy order
    w.write_header()
    w.write_rows("token_embd.weight", rows)   # float32 rows, in order, as many calls as wanted
    w.close()
"""
import struct

import numpy as np

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
GGUF_DEFAULT_ALIGNMENT = 32

# gguf_type: the metadata value types.
UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)
_SCALAR_FORMAT = {UINT8: "<B", INT8: "<b", UINT16: "<H", INT16: "<h", UINT32: "<I", INT32: "<i",
                  FLOAT32: "<f", BOOL: "<?", UINT64: "<Q", INT64: "<q", FLOAT64: "<d"}
_NUMPY_OF = {UINT8: "<u1", INT8: "<i1", UINT16: "<u2", INT16: "<i2", UINT32: "<u4", INT32: "<i4",
             FLOAT32: "<f4", BOOL: "<u1", UINT64: "<u8", INT64: "<i8", FLOAT64: "<f8"}

# ggml_type: the tensor types this writer knows.
GGML_F32, GGML_F16, GGML_Q8_0, GGML_BF16 = 0, 1, 8, 30
Q8_0_BLOCK = 32             # values per block; a block is its f16 scale d, then 32 int8 q
Q8_0_BLOCK_BYTES = 2 + Q8_0_BLOCK
TYPE_NAMES = {GGML_F32: "F32", GGML_F16: "F16", GGML_Q8_0: "Q8_0", GGML_BF16: "BF16"}


def row_bytes(ggml_type, cols):
    if ggml_type == GGML_F32:
        return 4 * cols
    if ggml_type in (GGML_F16, GGML_BF16):
        return 2 * cols
    if ggml_type == GGML_Q8_0:
        if cols % Q8_0_BLOCK:
            raise ValueError(f"Q8_0 needs rows of a multiple of {Q8_0_BLOCK} values, not {cols}")
        return cols // Q8_0_BLOCK * Q8_0_BLOCK_BYTES
    raise ValueError(f"unknown ggml type {ggml_type}")


def f32_to_bf16_bits(x):
    """Round-to-nearest-even float32 -> bfloat16 bit patterns (uint16), NaN kept a NaN."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)).astype(np.uint16)
    nan = np.isnan(x)
    if nan.any():
        rounded[nan] = 0x7FC0
    return rounded


def quantize_q8_0(rows):
    """ggml's Q8_0 rule per block of 32: d = max|x| / 127, q = roundf(x * (1/d)) (half away
    from zero), d stored as f16 (the same rule as kernels/dtype.cpp). Returns the bytes of
    the rows, block after block."""
    x = np.ascontiguousarray(rows, dtype=np.float32).reshape(-1, Q8_0_BLOCK)
    amax = np.abs(x)
    half = Q8_0_BLOCK // 2
    while half:   # max over each block by halving: numpy's max over a short axis is slow
        amax = np.maximum(amax[:, :half], amax[:, half:2 * half])
        half //= 2
    d = amax[:, 0] / np.float32(127.0)
    inv = np.divide(np.float32(1.0), d, out=np.zeros_like(d), where=d != 0)
    v = x * inv[:, None]
    whole = np.trunc(v)   # roundf exactly: v - trunc(v) is exact, so no x.5 is misjudged
    q = whole + np.copysign((np.abs(v - whole) >= np.float32(0.5)).astype(np.float32), v)
    out = np.empty((x.shape[0], Q8_0_BLOCK_BYTES), dtype=np.uint8)
    out[:, :2] = d.astype("<f2").view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q.astype(np.int8).view(np.uint8)
    return out.tobytes()


def encode_rows(rows, ggml_type):
    if ggml_type == GGML_F32:
        return np.ascontiguousarray(rows, dtype="<f4").tobytes()
    if ggml_type == GGML_F16:
        return np.ascontiguousarray(rows, dtype="<f2").tobytes()
    if ggml_type == GGML_BF16:
        return f32_to_bf16_bits(rows).astype("<u2").tobytes()
    if ggml_type == GGML_Q8_0:
        return quantize_q8_0(rows)
    raise ValueError(f"unknown ggml type {ggml_type}")


def _string(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


class GGUFWriter:
    def __init__(self, path, alignment=GGUF_DEFAULT_ALIGNMENT):
        self.path = str(path)
        self.alignment = alignment
        self._kv = []          # encoded key/value records
        self._tensors = []     # (name, shape, type, offset, nbytes)
        self._data_bytes = 0
        self._f = None
        self._current = 0      # the tensor write_rows is filling
        self._written = 0      # its bytes so far
        if alignment != GGUF_DEFAULT_ALIGNMENT:
            self.add_uint32("general.alignment", alignment)

    # -- metadata
    def _add(self, key, vtype, payload):
        if self._f is not None:
            raise RuntimeError(f"metadata {key!r} added after the header was written")
        self._kv.append(_string(key) + struct.pack("<I", vtype) + payload)

    def add_scalar(self, key, value, vtype):
        self._add(key, vtype, struct.pack(_SCALAR_FORMAT[vtype], value))

    def add_uint32(self, key, value):
        self.add_scalar(key, value, UINT32)

    def add_int32(self, key, value):
        self.add_scalar(key, value, INT32)

    def add_float32(self, key, value):
        self.add_scalar(key, value, FLOAT32)

    def add_bool(self, key, value):
        self.add_scalar(key, bool(value), BOOL)

    def add_string(self, key, value):
        self._add(key, STRING, _string(value))

    def add_array(self, key, values, elem_type):
        head = struct.pack("<IQ", elem_type, len(values))
        if elem_type == STRING:
            body = b"".join(_string(v) for v in values)
        else:
            body = np.asarray(values, dtype=_NUMPY_OF[elem_type]).tobytes()
        self._add(key, ARRAY, head + body)

    # -- tensors
    def add_tensor(self, name, shape, ggml_type):
        """Declares a tensor of numpy-order `shape` (rows last-but-one, row length last)."""
        if self._f is not None:
            raise RuntimeError(f"tensor {name!r} added after the header was written")
        shape = tuple(int(d) for d in shape)
        rows = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
        nbytes = rows * row_bytes(ggml_type, shape[-1])
        self._tensors.append((name, shape, ggml_type, self._data_bytes, nbytes))
        self._data_bytes += self._pad(nbytes)

    def _pad(self, n):
        return (n + self.alignment - 1) // self.alignment * self.alignment

    def write_header(self):
        head = GGUF_MAGIC + struct.pack("<IQQ", GGUF_VERSION, len(self._tensors), len(self._kv))
        infos = []
        for name, shape, ggml_type, offset, _ in self._tensors:
            dims = shape[::-1]
            infos.append(_string(name) + struct.pack(f"<I{len(dims)}Q", len(dims), *dims) +
                         struct.pack("<IQ", ggml_type, offset))
        blob = head + b"".join(self._kv) + b"".join(infos)
        self._f = open(self.path, "wb")
        self._f.write(blob + b"\0" * (self._pad(len(blob)) - len(blob)))

    def write_rows(self, name, rows):
        """Appends float32 rows to tensor `name`, which must be the one being filled (the
        tensors are written in the order they were declared); converts to its type."""
        if self._f is None:
            raise RuntimeError("write_header() first")
        if self._current >= len(self._tensors) or self._tensors[self._current][0] != name:
            expected = self._tensors[self._current][0] if self._current < len(self._tensors) else "none"
            raise RuntimeError(f"tensor {name!r} written out of order (expected {expected!r})")
        _, shape, ggml_type, _, nbytes = self._tensors[self._current]
        data = encode_rows(rows, ggml_type)
        self._written += len(data)
        if self._written > nbytes:
            raise RuntimeError(f"tensor {name!r}: {self._written} bytes written, shape {shape} holds {nbytes}")
        self._f.write(data)
        if self._written == nbytes:
            self._f.write(b"\0" * (self._pad(nbytes) - nbytes))
            self._current += 1
            self._written = 0

    def close(self):
        if self._current != len(self._tensors):
            missing = self._tensors[self._current][0]
            raise RuntimeError(f"{self.path}: tensor {missing!r} not (fully) written")
        self._f.close()
        self._f = None
