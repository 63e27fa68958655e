#!/usr/bin/python3
"""PyTorch reference throughput for BenchmarkEmbedClipTiny: the clip-tiny
image tower (32 px, patch 8, width 128, 2 heads, 2 layers, projection 32),
batch 64, float32, on the CPU threads given (default 1 and 2).

    /usr/bin/python3 bench_torch.py
"""
import sys
import time

import torch

sys.path.insert(0, ".")
from gen_fixtures import VisionTransformer  # noqa: E402

cfg = {"projection_dim": 32, "vision_config": {
    "hidden_size": 128, "intermediate_size": 512, "num_attention_heads": 2, "num_hidden_layers": 2,
    "image_size": 32, "patch_size": 8, "num_channels": 3, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5}}
model = VisionTransformer(cfg).eval()
x = torch.randn(64, 3, 32, 32)
for threads in (1, 2):
    torch.set_num_threads(threads)
    with torch.no_grad():
        for _ in range(5):
            model(x)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < 3:
            model(x)
            n += 1
        dt = time.perf_counter() - t0
    print(f"torch {torch.__version__} threads={threads}: {64 * n / dt:.0f} images/s")
