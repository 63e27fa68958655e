#!/usr/bin/python3
"""Generate image fixtures and Pillow reference outputs for data/ tests.

Run with Debian's python3-pil (Pillow 9.4) and python3-numpy:

    /usr/bin/python3 data/testdata/preprocess/gen_reference.py [--shared ../shared]

It writes, next to this script:
  fixtures/<name>.<ext>   small synthetic images in many formats and modes
  ref/<name>.rgb.npy      Image.open(f).convert("RGB") as (H, W, 3) uint8
  ref/pixels24.npy        CLIP preprocessing at size 24 of every fixture,
                          (N, 3, 24, 24) float32 in cases.json order
  ref/resize_<W>x<H>.npy  Image.resize((W, H), BICUBIC) of fixtures/rgb.png
  cases.json              the fixture list and what each one exercises
and, when the shared data folder is present,
  photos.json             digests of Pillow's CLIP preprocessing (size 224)
                          of ../shared/data/real/photos/* (the photos
                          themselves may not be committed): SHA-256 of the
                          8-bit resized crop plus per-row and per-column
                          channel means of the normalised output.

CLIP preprocessing here is HF CLIPImageProcessor's order: convert("RGB"),
resize the shorter side to S with BICUBIC (long side int(S*long/short)),
center crop at int(round((h-S)/2)), /255, (x-mean)/std in float32.
"""

import argparse
import hashlib
import io
import json
import os
import struct
import zlib

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


def clip_resize_crop(im, size):
    im = im.convert("RGB")
    w, h = im.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    nw, nh = (new_short, new_long) if w <= h else (new_long, new_short)
    if (nw, nh) != (w, h):
        im = im.resize((nw, nh), Image.BICUBIC)
    left = int(round((nw - size) / 2.0))
    top = int(round((nh - size) / 2.0))
    return im.crop((left, top, left + size, top + size))


def clip_normalize(crop):
    a = np.asarray(crop, dtype=np.uint8).astype(np.float32) / np.float32(255)
    a = (a - MEAN) / STD
    return a.transpose(2, 0, 1).astype(np.float32)


def synthetic(w, h, seed):
    """A smooth photo-like RGB image with edges and mild noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 100 * np.sin(x / w * 3.1 + seed) * np.cos(y / h * 2.3)
    g = 128 + 90 * np.cos((x + y) / (w + h) * 5.0 + seed)
    b = 255 * (x / max(w - 1, 1)) * 0.6 + 60 * (y / max(h - 1, 1))
    img = np.stack([r, g, b], axis=-1)
    # a hard-edged disc and a bar
    disc = (x - w * 0.35) ** 2 + (y - h * 0.55) ** 2 < (min(w, h) * 0.25) ** 2
    img[disc] = [230, 40, 30]
    img[(x > w * 0.7) & (x < w * 0.8)] = [20, 20, 200]
    img += rng.normal(0, 6, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def write_png16(path, a, color_type):
    """Write a 16-bit PNG (Pillow cannot write 16-bit RGB, LA or RGBA)."""
    h, w = a.shape[:2]
    raw = b"".join(b"\x00" + a[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))


def make_fixtures(fx):
    """Write the fixtures; return [(name, file, note)]."""
    rgb = Image.fromarray(synthetic(48, 40, 1), "RGB")
    odd = Image.fromarray(synthetic(47, 33, 2), "RGB")
    small = Image.fromarray(synthetic(20, 28, 3), "RGB")
    tall = Image.fromarray(synthetic(33, 70, 4), "RGB")
    alpha = Image.fromarray(
        np.tile(np.linspace(0, 255, 48, dtype=np.float64), (40, 1)).round().astype(np.uint8), "L")
    cases = []

    def save(name, ext, im, note, **kw):
        path = os.path.join(fx, f"{name}.{ext}")
        im.save(path, **kw)
        cases.append({"name": name, "file": f"fixtures/{name}.{ext}", "note": note})

    save("rgb", "png", rgb, "RGB PNG, downscale 48x40")
    save("odd", "png", odd, "RGB PNG, odd sizes 47x33")
    save("small", "png", small, "RGB PNG 20x28, upscale")
    save("tall", "png", tall, "RGB PNG 33x70, portrait")
    save("grey", "png", rgb.convert("L"), "L PNG")
    g16 = (np.asarray(rgb.convert("L"), dtype=np.uint16) * 3).astype(np.uint16)
    save("grey16", "png", Image.fromarray(g16, "I;16"), "16-bit grey PNG (Pillow mode I, clamped to 255)")
    save("bilevel", "png", rgb.convert("1"), "1-bit PNG")
    rgb16 = np.asarray(rgb, dtype=np.uint16) * 257 + np.arange(40 * 48 * 3, dtype=np.uint16).reshape(40, 48, 3) % 200
    for name, arr, ct, note in [
        ("rgb16", rgb16, 2, "16-bit RGB PNG (high byte kept)"),
        ("la16", rgb16[:, :, 0:2], 4, "16-bit LA PNG (Pillow RGBA, high byte)"),
        ("rgba16", np.concatenate([rgb16, rgb16[:, :, :1]], axis=2), 6, "16-bit RGBA PNG (high byte)"),
    ]:
        write_png16(os.path.join(fx, f"{name}.png"), arr, ct)
        cases.append({"name": name, "file": f"fixtures/{name}.png", "note": note})
    la = Image.merge("LA", (rgb.convert("L"), alpha))
    save("la", "png", la, "LA PNG, alpha dropped")
    rgba = rgb.copy()
    rgba.putalpha(alpha)
    save("rgba", "png", rgba, "RGBA PNG with alpha 0..255, alpha dropped")
    pal = rgb.quantize(colors=200)
    save("palette", "png", pal, "P PNG, 200 colours")
    save("palette16", "png", rgb.quantize(colors=16), "P PNG, 4-bit", bits=4)
    save("palette_trns", "png", pal, "P PNG with a transparent index", transparency=5)
    save("rgb_trns", "png", rgb, "RGB PNG with tRNS colour", transparency=tuple(int(v) for v in np.asarray(rgb)[0, 0]))
    save("q90_420", "jpg", rgb, "JPEG 4:2:0 q90", quality=90, subsampling=2)
    save("q90_422", "jpg", rgb, "JPEG 4:2:2 q90", quality=90, subsampling=1)
    save("q90_444", "jpg", rgb, "JPEG 4:4:4 q90", quality=90, subsampling=0)
    save("odd_420", "jpg", odd, "JPEG 4:2:0 odd sizes", quality=85, subsampling=2)
    save("tall_420", "jpg", tall, "JPEG 4:2:0 portrait", quality=75, subsampling=2)
    save("progressive", "jpg", rgb, "progressive JPEG", quality=80, progressive=True)
    save("grey", "jpg", rgb.convert("L"), "greyscale JPEG", quality=90)
    save("cmyk", "jpg", rgb.convert("CMYK"), "Adobe CMYK JPEG", quality=95)
    save("palette", "gif", pal, "GIF first frame")
    save("trns", "gif", pal, "GIF with a transparent index", transparency=5)
    save("rgb", "bmp", rgb, "24-bit BMP")
    save("odd", "bmp", odd, "24-bit BMP, odd width (row padding)")
    save("palette", "bmp", pal, "8-bit palette BMP")
    save("lossy", "webp", rgb, "lossy WebP", quality=80)
    save("lossy_odd", "webp", odd, "lossy WebP, odd sizes", quality=70)
    save("lossy_alpha", "webp", rgba, "lossy WebP with alpha", quality=80)
    save("lossless", "webp", rgb, "lossless WebP", lossless=True)
    return cases


def photos_digest(shared):
    root = os.path.join(shared, "data", "real", "photos")
    out = {"size": 224, "photos": []}
    for f in sorted(os.listdir(root)):
        if not f.lower().endswith((".png", ".jpg", ".jpeg")):
            continue
        im = Image.open(os.path.join(root, f))
        mode = im.mode
        crop = clip_resize_crop(im, 224)
        x = clip_normalize(crop)  # (3, 224, 224)
        out["photos"].append({
            "file": f,
            "mode": mode,
            "width": im.size[0],
            "height": im.size[1],
            "crop_sha256": hashlib.sha256(np.asarray(crop, dtype=np.uint8).tobytes()).hexdigest(),
            "row_means": np.round(x.mean(axis=2), 5).tolist(),  # [3][224]
            "col_means": np.round(x.mean(axis=1), 5).tolist(),  # [3][224]
        })
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(HERE, "..", "..", "..", "..", "shared"))
    args = ap.parse_args()
    fx = os.path.join(HERE, "fixtures")
    ref = os.path.join(HERE, "ref")
    os.makedirs(fx, exist_ok=True)
    os.makedirs(ref, exist_ok=True)
    cases = make_fixtures(fx)
    pixels = []
    for c in cases:
        im = Image.open(os.path.join(HERE, c["file"]))
        c["mode"] = im.mode
        c["width"], c["height"] = im.size
        np.save(os.path.join(ref, c["file"].split("/")[1] + ".rgb.npy"),
                np.asarray(im.convert("RGB"), dtype=np.uint8))
        pixels.append(clip_normalize(clip_resize_crop(Image.open(os.path.join(HERE, c["file"])), 24)))
    np.save(os.path.join(ref, "pixels24.npy"), np.stack(pixels).astype(np.float32))
    rgb = Image.open(os.path.join(fx, "rgb.png"))
    resizes = [(16, 16), (31, 17), (100, 90), (48, 20), (20, 40), (1, 1), (7, 150)]
    for w, h in resizes:
        np.save(os.path.join(ref, f"resize_{w}x{h}.npy"),
                np.asarray(rgb.resize((w, h), Image.BICUBIC), dtype=np.uint8))
    with open(os.path.join(HERE, "cases.json"), "w") as f:
        json.dump({"size": 24, "cases": cases, "resizes": resizes}, f, indent=1)
    if os.path.isdir(os.path.join(args.shared, "data", "real", "photos")):
        with open(os.path.join(HERE, "photos.json"), "w") as f:
            json.dump(photos_digest(args.shared), f)
    else:
        print("shared photos not found: photos.json not regenerated")


if __name__ == "__main__":
    main()
