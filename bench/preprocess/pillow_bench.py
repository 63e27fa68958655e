#!/usr/bin/python3
"""Pillow baseline for qatclip's BenchmarkDecodePreprocessJPEG640x480.

Decodes a 640x480 JPEG and runs CLIP preprocessing the way HF/OpenAI CLIP
do with Pillow + NumPy, single-threaded, and prints per stage images per wall second and per
CPU second (the per-core rate, robust when the machine is shared):

    /usr/bin/python3 bench/preprocess/pillow_bench.py [JPEG] [--seconds 3]

JPEG defaults to ../shared/golden/preprocess/img_0.jpg (the file the Go
benchmark uses). Run it next to
    go test ./data/ -run XXX -bench 'JPEG640x480|ResizeCrop' -cpu 1
on the same machine, at the same time, and compare ratios.
"""

import argparse
import io
import os
import time

import numpy as np
from PIL import Image

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
SIZE = 224


def decode(data):
    im = Image.open(io.BytesIO(data))
    return im.convert("RGB")


def resize_crop(im):
    w, h = im.size
    short, long = (w, h) if w <= h else (h, w)
    ns, nl = SIZE, int(SIZE * long / short)
    nw, nh = (ns, nl) if w <= h else (nl, ns)
    im = im.resize((nw, nh), Image.BICUBIC)
    left, top = int(round((nw - SIZE) / 2.0)), int(round((nh - SIZE) / 2.0))
    return im.crop((left, top, left + SIZE, top + SIZE))


def normalize(im):
    a = np.asarray(im, dtype=np.float32) / np.float32(255)
    return ((a - MEAN) / STD).transpose(2, 0, 1).copy()


def rate(fn, seconds):
    """Return (images per wall second, images per CPU second)."""
    fn()  # warm up
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while True:
        fn()
        n += 1
        el = time.perf_counter() - t0
        if el >= seconds:
            return n / el, n / max(time.process_time() - c0, 1e-9)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("jpeg", nargs="?", default=os.path.join(here, "..", "..", "..", "shared", "golden", "preprocess", "img_0.jpg"))
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    with open(args.jpeg, "rb") as f:
        data = f.read()
    im = decode(data)
    crop = resize_crop(im)
    import PIL
    print(f"Pillow {PIL.__version__}, numpy {np.__version__}, {os.path.basename(args.jpeg)} {im.size[0]}x{im.size[1]}")
    for name, fn in [
        ("decode+preprocess", lambda: normalize(resize_crop(decode(data)))),
        ("decode (RGB)", lambda: decode(data).load()),
        ("resize+crop", lambda: resize_crop(im)),
        ("normalize 224", lambda: normalize(crop)),
    ]:
        wall, cpu = rate(fn, args.seconds)
        print(f"{name:20s} {wall:8.1f} images/s {cpu:8.1f} images/cpu-s")


if __name__ == "__main__":
    main()
