#!/usr/bin/python3
"""Generates the Pillow reference data of tests/image under tests/data/image/.

Run with Debian's python3-pil (9.4.0 when committed): /usr/bin/python3 tools/gen_image_refs.py
Raw references (*.rgb) are the bytes of Image.convert("RGB").tobytes(); the C++ tests read them
together with the listed sizes in refs.json. Only used to make test data, never at run time.
"""
import io, json, math, os, struct, zlib
from PIL import Image, ImageOps

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "image")
os.makedirs(OUT, exist_ok=True)
refs = {}


def lcg_bytes(n, seed):
    out = bytearray(n)
    s = seed
    for i in range(n):
        s = (s * 1103515245 + 12345) & 0x7FFFFFFF
        out[i] = (s >> 16) & 0xFF
    return bytes(out)


def smooth(w, h, seed, noisy=True):
    """Gradients + rings + a little noise: realistic, compresses well, exercises clipping."""
    noise = lcg_bytes(w * h * 3, seed)
    px = bytearray(w * h * 3)
    for y in range(h):
        for x in range(w):
            i = (y * w + x) * 3
            r = 255 * x // max(w - 1, 1)
            g = 255 * y // max(h - 1, 1)
            b = 255 if ((x // 7 + y // 5) % 2) else 0          # hard edges -> over/undershoot
            d = math.hypot(x - w / 3, y - h / 2)
            b = (b + int(127 + 127 * math.sin(d / 6))) // 2
            nr, ng = (noise[i] % 9 - 4, noise[i + 1] % 9 - 4) if noisy else (0, 0)
            px[i] = min(255, max(0, r + nr))
            px[i + 1] = min(255, max(0, g + ng))
            px[i + 2] = b
    return Image.frombytes("RGB", (w, h), bytes(px))


def save_rgb(name, img):
    img = img.convert("RGB")
    with open(os.path.join(OUT, name + ".rgb"), "wb") as f:
        f.write(img.tobytes())
    refs[name] = list(img.size)


# 1. Resize: random pixels (worst case for rounding), many non-integer factors.
src = Image.frombytes("RGB", (37, 23), lcg_bytes(37 * 23 * 3, 7))
src.save(os.path.join(OUT, "resize_src.png"))
for w, h in [(16, 11), (90, 50), (50, 9), (37, 40), (13, 23), (5, 3), (111, 7), (1, 1)]:
    save_rgb(f"resize_{w}x{h}", src.resize((w, h), Image.BICUBIC))

# 2. Slicing at the real scale (448): a 700x500 picture -> grid, overview and slices.
def ensure_divide(length, patch_size):
    return max(round(length / patch_size) * patch_size, patch_size)

def find_best_resize(size, S, p, allow_upscale=False):
    w, h = size
    if (w * h > S * S) or allow_upscale:
        r = w / h
        h = int(S / math.sqrt(r))
        w = int(h * r)
    return (ensure_divide(w, p), ensure_divide(h, p))

def get_refine_size(size, grid, S, p, allow_upscale=False):
    w, h = size
    rw, rh = ensure_divide(w, grid[0]), ensure_divide(h, grid[1])
    bw, bh = find_best_resize((rw / grid[0], rh / grid[1]), S, p, allow_upscale)
    return (bw * grid[0], bh * grid[1])

def get_sliced_grid(size, max_slice_nums, S):
    w, h = size
    log_ratio = math.log(w / h)
    ratio = w * h / (S * S)
    multiple = min(math.ceil(ratio), max_slice_nums)
    if multiple <= 1:
        return None
    cands = [i for i in [multiple - 1, multiple, multiple + 1] if i != 1 and i <= max_slice_nums]
    grids = [[m, n // m] for n in cands for m in range(1, n + 1) if n % m == 0]
    best, err = [1, 1], float("inf")
    for g in grids:
        e = abs(log_ratio - math.log(g[0] / g[1]))
        if e < err:
            best, err = g, e
    return best

big = smooth(700, 500, 11, noisy=False)
big.save(os.path.join(OUT, "slice_src.png"))
grid = get_sliced_grid(big.size, 9, 448)
pieces = [big.resize(find_best_resize(big.size, 448, 14), Image.BICUBIC)]
refined = big.resize(get_refine_size(big.size, grid, 448, 14, True), Image.BICUBIC)
cw, ch = refined.size[0] // grid[0], refined.size[1] // grid[1]
for r in range(grid[1]):
    for c in range(grid[0]):
        pieces.append(refined.crop((c * cw, r * ch, c * cw + cw, r * ch + ch)))
for i, p in enumerate(pieces):  # PNG (lossless) keeps the repository small
    p.save(os.path.join(OUT, f"slice_piece_{i}.png"))
    refs[f"slice_piece_{i}"] = list(p.size)
refs["slice_grid"] = grid

# 3. Mode conversions to RGB (palette, L, LA, RGBA, 1-bit, 16-bit gray, palette+tRNS).
base = smooth(24, 17, 3)
variants = {
    "mode_P": base.convert("P", palette=Image.ADAPTIVE, colors=37),
    "mode_L": base.convert("L"),
    "mode_LA": Image.merge("LA", (base.convert("L"), base.split()[0])),
    "mode_RGBA": Image.merge("RGBA", base.split() + (base.split()[1],)),
    "mode_1": base.convert("1"),
    "mode_I16": Image.frombytes("I;16", (24, 17), lcg_bytes(24 * 17 * 2, 5)),
}
for name, im in variants.items():
    buf = io.BytesIO()
    if name == "mode_P":
        im.save(buf, "PNG", transparency=3)
    else:
        im.save(buf, "PNG")
    open(os.path.join(OUT, name + ".png"), "wb").write(buf.getvalue())
    save_rgb(name, Image.open(io.BytesIO(buf.getvalue())))

# 16-bit RGB PNG (Pillow cannot write it): written by hand, decoded by Pillow.
def png_chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
w16, h16 = 9, 5
raw16 = lcg_bytes(w16 * h16 * 6, 9)
scan = b"".join(b"\0" + raw16[y * w16 * 6:(y + 1) * w16 * 6] for y in range(h16))
png16 = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w16, h16, 16, 2, 0, 0, 0))
         + png_chunk(b"IDAT", zlib.compress(scan)) + png_chunk(b"IEND", b""))
open(os.path.join(OUT, "mode_RGB16.png"), "wb").write(png16)
save_rgb("mode_RGB16", Image.open(io.BytesIO(png16)))

# 4. JPEG (4:2:0 colour, grayscale, Adobe CMYK) and WebP (lossy, lossless, with alpha).
jsrc = smooth(61, 43, 5)
for name, im, kw in [("jpeg_rgb", jsrc, dict(quality=90)),
                     ("jpeg_gray", jsrc.convert("L"), dict(quality=85)),
                     ("jpeg_cmyk", jsrc.convert("CMYK"), dict(quality=90)),
                     ("webp_lossy", jsrc, dict(quality=80)),
                     ("webp_lossless", jsrc, dict(lossless=True)),
                     ("webp_alpha", Image.merge("RGBA", jsrc.split() + (jsrc.split()[0],)), dict(quality=80))]:
    fmt = "JPEG" if name.startswith("jpeg") else "WEBP"
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    ext = "jpg" if fmt == "JPEG" else "webp"
    open(os.path.join(OUT, f"{name}.{ext}"), "wb").write(buf.getvalue())
    save_rgb(name, Image.open(io.BytesIO(buf.getvalue())))

# 5. EXIF orientation 6 (rotate 90 clockwise) in a JPEG; reference = ImageOps.exif_transpose.
exif = Image.Exif()
exif[0x0112] = 6
buf = io.BytesIO()
jsrc.save(buf, "JPEG", quality=90, exif=exif.tobytes())
open(os.path.join(OUT, "jpeg_exif6.jpg"), "wb").write(buf.getvalue())
save_rgb("jpeg_exif6", ImageOps.exif_transpose(Image.open(io.BytesIO(buf.getvalue()))))
save_rgb("jpeg_exif6_raw", Image.open(io.BytesIO(buf.getvalue())))

# 6. All eight orientations through PNG eXIf chunks, one through a WebP EXIF chunk.
osrc = smooth(7, 5, 13)
for o in range(1, 9):
    exif = Image.Exif()
    exif[0x0112] = o
    buf = io.BytesIO()
    osrc.save(buf, "PNG", exif=exif.tobytes())
    open(os.path.join(OUT, f"png_exif{o}.png"), "wb").write(buf.getvalue())
    save_rgb(f"png_exif{o}", ImageOps.exif_transpose(Image.open(io.BytesIO(buf.getvalue()))))
exif = Image.Exif()
exif[0x0112] = 8
buf = io.BytesIO()
osrc.save(buf, "WEBP", lossless=True, exif=exif.tobytes())
open(os.path.join(OUT, "webp_exif8.webp"), "wb").write(buf.getvalue())
save_rgb("webp_exif8", ImageOps.exif_transpose(Image.open(io.BytesIO(buf.getvalue()))))

with open(os.path.join(OUT, "refs.json"), "w") as f:
    json.dump(refs, f, indent=0, sort_keys=True)
print("wrote", len(refs), "references to", OUT)
