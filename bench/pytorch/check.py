#!/usr/bin/env python3
"""Self-checks of bench.py; exit status 1 on a failure.

1. The model is HF CLIP: loads ../shared/golden/clip-tiny/model.safetensors
   (HF CLIPModel names) into bench.py's float tiny model and compares image
   and text features and logits_per_image with the golden outputs next to it
   (the safetensors file is parsed here; only torch and numpy are needed).
2. The two fake-quant implementations (--fq-impl aten|composite) agree:
   forward, dx and dscale, per tensor and per channel, ties included.

    /usr/bin/python3 bench/pytorch/check.py [GOLDEN_DIR]
"""

import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def read_safetensors(path):
    """Returns {name: np.ndarray} for the tensors of a .safetensors file."""
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        lo, hi = info["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + lo:8 + n + hi],
                                  dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
    return out


def hf_name(name):
    """Maps a bench.py parameter name to its HF CLIPModel name."""
    for tower in ("vision_model", "text_model"):
        if name.startswith(tower + ".layers."):
            name = name.replace(tower + ".layers.", tower + ".encoder.layers.", 1)
            name = name.replace(".fc1.", ".mlp.fc1.").replace(".fc2.", ".mlp.fc2.")
    fixed = {
        "vision_model.patch_embed.weight": "vision_model.embeddings.patch_embedding.weight",
        "vision_model.class_embedding": "vision_model.embeddings.class_embedding",
        "vision_model.position_embedding": "vision_model.embeddings.position_embedding.weight",
        "vision_model.visual_projection.weight": "visual_projection.weight",
        "text_model.token_embedding.weight": "text_model.embeddings.token_embedding.weight",
        "text_model.position_embedding": "text_model.embeddings.position_embedding.weight",
        "text_model.text_projection.weight": "text_projection.weight",
    }
    return fixed.get(name, name)


def check_golden(golden):
    """Returns True when the float tiny model reproduces the golden outputs."""
    weights = read_safetensors(os.path.join(golden, "model.safetensors"))
    model = bench.CLIP(bench.CONFIGS["tiny"], None, sdpa=False).eval()
    used = set()
    with torch.no_grad():
        for name, p in model.named_parameters():
            key = hf_name(name)
            w = torch.from_numpy(weights[key].copy())
            p.copy_(w.reshape(p.shape))  # conv kernel [out,C,p,p] -> [out, C*p*p]
            used.add(key)
    unused = sorted(set(weights) - used)
    if unused:
        print("unused golden tensors:", unused)  # e.g. position_ids buffers
    load = lambda f: torch.from_numpy(np.load(os.path.join(golden, f)))  # noqa: E731
    pixels, ids = load("pixel_values.npy"), load("input_ids.npy")
    with torch.no_grad():
        img = model.vision_model(pixels)
        txt = model.text_model(ids)
        imn = img / img.norm(dim=-1, keepdim=True)
        txn = txt / txt.norm(dim=-1, keepdim=True)
        logits = model.logit_scale.exp() * imn @ txn.t()
    worst = 0.0
    for name, got in (("image_features", img), ("text_features", txt),
                      ("logits_per_image", logits)):
        want = load(name + ".npy")
        err = (got - want).abs().max().item()
        worst = max(worst, err / max(want.abs().max().item(), 1e-12))
        print("%-17s max abs err %.3g" % (name, err))
    ok = worst < 1e-4
    print("golden clip-tiny:", "OK" if ok else "MISMATCH",
          "(worst relative error %.3g)" % worst)
    return ok


def check_fake_quant():
    """Returns True when the composite fake quant matches PyTorch's learnable
    ops in forward, dx and dscale (relative to the scale's magnitude)."""
    g = torch.Generator().manual_seed(3)
    ok = True
    # No exact ties per tensor: PyTorch's per-tensor learnable backward rounds
    # x/s = k+0.5 away from zero for dscale while its forward rounds half to
    # even (per channel both round half to even), so dscale differs there by
    # one unit of grad; the composite is consistent with the forward.
    cases = [("per-channel w4", (6, 40), True, -8, 7, True),
             ("per-channel w8", (5, 33), True, -128, 127, True),
             ("per-tensor a8", (4, 7, 9), False, 0, 255, False)]
    for name, shape, per_channel, qmin, qmax, ties in cases:
        x = torch.randn(*shape, generator=g) * 2
        n = shape[0] if per_channel else 1
        scale = torch.rand(n, generator=g) * 0.05 + 0.01
        zp = torch.zeros(n) if per_channel else torch.tensor([37.0])
        # Exact ties (x/s half-way between integers) and values clipped at both ends.
        if ties:
            x.view(-1)[:n] = (torch.arange(n) % 5 + 0.5) * scale
        x.view(-1)[n:2 * n] = 1e3
        x.view(-1)[2 * n:3 * n] = -1e3
        gf = 1 / (x.numel() * qmax) ** 0.5
        grad_out = torch.randn(*shape, generator=g)
        results = []
        for impl in ("aten", "composite"):
            xi, si = x.clone().requires_grad_(), scale.clone().requires_grad_()
            if impl == "aten" and per_channel:
                y = torch._fake_quantize_learnable_per_channel_affine(xi, si, zp, 0, qmin, qmax, gf)
            elif impl == "aten":
                y = torch._fake_quantize_learnable_per_tensor_affine(xi, si, zp, qmin, qmax, gf)
            else:
                view = (-1,) + (1,) * (len(shape) - 1) if per_channel else (1,)
                y = bench.fake_quant_composite(xi, si.view(view), zp.view(view), qmin, qmax, gf)
            y.backward(grad_out)
            results.append((y.detach(), xi.grad, si.grad))
        errs = [(a - b).abs().max().item() for a, b in zip(*results)]
        # y is compared to the scale; dscale to its own magnitude.
        rel = [errs[0] / scale.max().item(), errs[1],
               errs[2] / max(results[0][2].abs().max().item(), 1e-12)]
        good = max(rel) < 1e-5
        ok = ok and good
        print("fake quant %-15s y %.2g  dx %.2g  dscale %.2g  %s"
              % (name, rel[0], rel[1], rel[2], "OK" if good else "MISMATCH"))
    return ok


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    golden = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        here, "..", "..", "..", "shared", "golden", "clip-tiny")
    ok = check_golden(golden)
    ok = check_fake_quant() and ok
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
