#!/usr/bin/env python3
"""PyTorch reference benchmark for qatclip.

Builds a CLIP model (vision ViT + causal text transformer) in plain PyTorch,
optionally puts QAT fake quantization on every Linear (learnable per-channel
weight quantizer and learnable per-tensor input-activation quantizer, LSQ
initialisation), and times one of:

  train           forward + backward + AdamW step of the contrastive loss
  embed           image-tower forward throughput (no grad)
  fakequant-cost  forward+backward of the quantized model against the same
                  model in float, interleaved in one process; prints the ratio

Each result is one JSON line on stdout (fields documented in README.md next to
this file), so that `qatclip bench` figures can be put side by side with it.

It runs on PyTorch 1.13 (Debian's python3-torch, CPU) and on PyTorch 2.x with
CUDA; cuda is picked when available unless --device says otherwise. Features
missing on the running PyTorch (torch.compile, bf16 autocast) are reported in
the JSON "error" field and the script exits 0.
"""

import argparse
import contextlib
import ctypes
import inspect
import json
import math
import platform
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# Model sizes. tiny matches ../shared/golden/clip-tiny/config.json; small and
# b32 are the sizes the qatclip issues name (b32 = OpenAI ViT-B/32).
CONFIGS = {
    "tiny": dict(
        image_size=32, patch_size=8, v_width=128, v_heads=2, v_layers=2,
        vocab=1000, context=16, t_width=64, t_heads=4, t_layers=2, proj=32),
    "small": dict(
        image_size=64, patch_size=8, v_width=256, v_heads=4, v_layers=4,
        vocab=49408, context=77, t_width=256, t_heads=4, t_layers=4, proj=256),
    "b32": dict(
        image_size=224, patch_size=32, v_width=768, v_heads=12, v_layers=12,
        vocab=49408, context=77, t_width=512, t_heads=8, t_layers=12, proj=512),
}

# Quantization schemes: weight bits (signed, symmetric, per output channel)
# and activation bits (unsigned, asymmetric, per tensor).
QUANT = {"none": None, "w8a8": (8, 8), "w4a8": (4, 8)}

# Dense bf16 peak TFLOP/s used for MFU, matched against the CUDA device name.
# The first matching substring wins; --peak-tflops overrides it.
PEAK_BF16_TFLOPS = [
    ("H200", 989.4), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.4),
    ("A100", 312.0), ("L40S", 362.0), ("L4", 121.0),
]

LOGIT_SCALE_INIT = math.log(1 / 0.07)  # 2.6592, CLIP's initial temperature
LOGIT_SCALE_MAX = 100.0                # CLIP clamps exp(logit_scale) at 100


# ---------------------------------------------------------------------------
# Quantizers


def round_ste(x):
    """Round half to even forward, identity gradient (straight through)."""
    return x + (torch.round(x) - x).detach()


def scale_grad(s, factor):
    """s in the forward (bit for bit: s - s.detach() is exactly 0); its
    gradient multiplied by factor."""
    return s.detach() + (s - s.detach()) * factor


def fake_quant_composite(x, scale, zero_point, qmin, qmax, grad_factor):
    """Learnable affine fake quant written with plain tensor ops, the same
    forward and gradients (for x and scale) as PyTorch's
    _fake_quantize_learnable_per_*_affine: dx passes where the quantized value
    is inside [qmin, qmax]; dscale = (q - z) - x/s inside, qmin - z or
    qmax - z outside, times grad_factor. scale and zero_point broadcast
    against x. torch.compile can fuse it (the aten learnable ops have no meta
    kernels in some PyTorch versions, which breaks the compiled graph at every
    Linear)."""
    s = scale_grad(scale, grad_factor)
    q = torch.clamp(round_ste(x / s) + zero_point, qmin, qmax)
    return (q - zero_point) * s


class WeightQuant(nn.Module):
    """Learnable per-output-channel fake quant of a [out, in] weight.

    Signed symmetric (zero point 0), LSQ: scale starts at 2*mean|w|/sqrt(qmax)
    per channel, its gradient is multiplied by 1/sqrt(numel*qmax).
    """

    def __init__(self, weight, bits, impl="aten"):
        super().__init__()
        self.impl = impl
        self.qmin, self.qmax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        self.grad_factor = 1.0 / math.sqrt(weight.numel() * self.qmax)
        with torch.no_grad():
            s = weight.abs().mean(dim=1) * (2 / math.sqrt(self.qmax))
        self.scale = nn.Parameter(s.clamp(min=1e-8))
        self.register_buffer("zero_point", torch.zeros(weight.shape[0]))

    def forward(self, w):
        if self.impl == "composite":
            return fake_quant_composite(w, self.scale[:, None], self.zero_point[:, None],
                                        self.qmin, self.qmax, self.grad_factor)
        return torch._fake_quantize_learnable_per_channel_affine(
            w, self.scale, self.zero_point, 0, self.qmin, self.qmax,
            self.grad_factor)


class ActQuant(nn.Module):
    """Learnable per-tensor fake quant of a Linear's input.

    Unsigned asymmetric. LSQ initialisation from the first batch it sees:
    scale = 2*mean|x|/sqrt(qmax), zero point = the one that puts min(x, 0) at
    qmin; afterwards the scale is learned (grad factor 1/sqrt(numel*qmax)) and
    the zero point stays fixed (lsq, not lsq+), as in qatclip's `lsq` method.
    Fake quant runs in float32 even under autocast (the learnable ops are
    float kernels); the following F.linear casts back to bf16.
    """

    def __init__(self, bits, impl="aten"):
        super().__init__()
        self.impl = impl
        self.qmin, self.qmax = 0, (1 << bits) - 1
        self.scale = nn.Parameter(torch.ones(1))
        self.register_buffer("zero_point", torch.zeros(1))
        self.initialized = False

    @torch.no_grad()
    def _init(self, x):
        s = (x.abs().mean() * (2 / math.sqrt(self.qmax))).clamp(min=1e-8)
        z = (self.qmin - torch.round(x.min().clamp(max=0) / s)).clamp(
            self.qmin, self.qmax)
        self.scale.copy_(s.reshape(1))
        self.zero_point.copy_(z.reshape(1))
        self.initialized = True

    def forward(self, x):
        x = x.float()
        if not self.initialized:
            self._init(x)
        grad_factor = 1.0 / math.sqrt(x.numel() * self.qmax)
        if self.impl == "composite":
            return fake_quant_composite(x, self.scale, self.zero_point,
                                        self.qmin, self.qmax, grad_factor)
        return torch._fake_quantize_learnable_per_tensor_affine(
            x, self.scale, self.zero_point, self.qmin, self.qmax, grad_factor)


class QLinear(nn.Module):
    """Linear layer with optional weight and input-activation fake quant;
    quant is None or (weight bits, activation bits, fake-quant impl)."""

    def __init__(self, d_in, d_out, bias=True, quant=None):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(d_out, d_in) * 0.02)
        self.bias = nn.Parameter(torch.zeros(d_out)) if bias else None
        self.wq = WeightQuant(self.weight, quant[0], quant[2]) if quant else None
        self.aq = ActQuant(quant[1], quant[2]) if quant else None

    def forward(self, x):
        w = self.weight
        if self.wq is not None:
            x, w = self.aq(x), self.wq(w)
        return F.linear(x, w, self.bias)


# ---------------------------------------------------------------------------
# CLIP model


def quick_gelu(x):
    """CLIP's activation, x * sigmoid(1.702 x)."""
    return x * torch.sigmoid(1.702 * x)


class Attention(nn.Module):
    """Multi-head self-attention with q/k/v/out projections (all QLinear)."""

    def __init__(self, width, heads, quant, sdpa):
        super().__init__()
        self.heads, self.sdpa = heads, sdpa
        self.q_proj = QLinear(width, width, quant=quant)
        self.k_proj = QLinear(width, width, quant=quant)
        self.v_proj = QLinear(width, width, quant=quant)
        self.out_proj = QLinear(width, width, quant=quant)

    def forward(self, x, causal):
        b, s, d = x.shape
        h, dh = self.heads, d // self.heads
        q = self.q_proj(x).view(b, s, h, dh).transpose(1, 2)
        k = self.k_proj(x).view(b, s, h, dh).transpose(1, 2)
        v = self.v_proj(x).view(b, s, h, dh).transpose(1, 2)
        if self.sdpa:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        else:
            a = (q * dh ** -0.5) @ k.transpose(-1, -2)
            if causal:
                mask = torch.full((s, s), float("-inf"), device=x.device).triu(1)
                a = a + mask
            o = a.softmax(dim=-1) @ v
        return self.out_proj(o.transpose(1, 2).reshape(b, s, d))


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(ln1 x), then x + mlp(ln2 x)."""

    def __init__(self, width, heads, quant, sdpa):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(width)
        self.self_attn = Attention(width, heads, quant, sdpa)
        self.layer_norm2 = nn.LayerNorm(width)
        self.fc1 = QLinear(width, 4 * width, quant=quant)
        self.fc2 = QLinear(4 * width, width, quant=quant)

    def forward(self, x, causal=False):
        x = x + self.self_attn(self.layer_norm1(x), causal)
        return x + self.fc2(quick_gelu(self.fc1(self.layer_norm2(x))))


class VisionTower(nn.Module):
    """ViT: patch embedding as a Linear over flattened patches, class token,
    learned positions, pre-LN, blocks, post-LN on the class token, projection."""

    def __init__(self, c, quant, sdpa):
        super().__init__()
        p, w = c["patch_size"], c["v_width"]
        self.patch = p
        n = (c["image_size"] // p) ** 2
        self.patch_embed = QLinear(3 * p * p, w, bias=False, quant=quant)
        self.class_embedding = nn.Parameter(torch.randn(w) * 0.02)
        self.position_embedding = nn.Parameter(torch.randn(n + 1, w) * 0.02)
        self.pre_layrnorm = nn.LayerNorm(w)
        self.layers = nn.ModuleList(
            Block(w, c["v_heads"], quant, sdpa) for _ in range(c["v_layers"]))
        self.post_layernorm = nn.LayerNorm(w)
        self.visual_projection = QLinear(w, c["proj"], bias=False, quant=quant)

    def forward(self, pixels):
        b, ch, hh, ww = pixels.shape
        p = self.patch
        # [B, C, H, W] -> [B, H/p * W/p, C*p*p], the order of a conv kernel.
        x = pixels.reshape(b, ch, hh // p, p, ww // p, p)
        x = x.permute(0, 2, 4, 1, 3, 5).reshape(b, (hh // p) * (ww // p), ch * p * p)
        x = self.patch_embed(x)
        cls = self.class_embedding.to(x.dtype).expand(b, 1, -1)
        x = torch.cat([cls, x], dim=1) + self.position_embedding
        x = self.pre_layrnorm(x)
        for layer in self.layers:
            x = layer(x)
        return self.visual_projection(self.post_layernorm(x[:, 0]))


class TextTower(nn.Module):
    """Causal text transformer: token + position embedding, blocks, final LN,
    pooling at the EOT token (the largest id, found by argmax), projection."""

    def __init__(self, c, quant, sdpa):
        super().__init__()
        w = c["t_width"]
        self.token_embedding = nn.Embedding(c["vocab"], w)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        self.position_embedding = nn.Parameter(torch.randn(c["context"], w) * 0.01)
        self.layers = nn.ModuleList(
            Block(w, c["t_heads"], quant, sdpa) for _ in range(c["t_layers"]))
        self.final_layer_norm = nn.LayerNorm(w)
        self.text_projection = QLinear(w, c["proj"], bias=False, quant=quant)

    def forward(self, ids):
        x = self.token_embedding(ids) + self.position_embedding[: ids.shape[1]]
        for layer in self.layers:
            x = layer(x, causal=True)
        x = self.final_layer_norm(x)
        pooled = x[torch.arange(x.shape[0], device=x.device), ids.argmax(dim=-1)]
        return self.text_projection(pooled)


class CLIP(nn.Module):
    """Both towers and the learnable temperature; forward returns the loss."""

    def __init__(self, c, quant, sdpa):
        super().__init__()
        self.vision_model = VisionTower(c, quant, sdpa)
        self.text_model = TextTower(c, quant, sdpa)
        self.logit_scale = nn.Parameter(torch.tensor(LOGIT_SCALE_INIT))

    def forward(self, pixels, ids):
        img = F.normalize(self.vision_model(pixels).float(), dim=-1)
        txt = F.normalize(self.text_model(ids).float(), dim=-1)
        logits = self.logit_scale.exp().clamp(max=LOGIT_SCALE_MAX) * img @ txt.t()
        labels = torch.arange(logits.shape[0], device=logits.device)
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2


def make_optimizer(model, device, impl="auto"):
    """AdamW with qatclip's parameter groups: Linear weights (lr 1e-5, weight
    decay 0.1), LayerNorm/bias/embeddings/logit scale (lr 1e-5, no decay),
    quantizer scales (lr 1e-3, no decay). impl: fused, foreach, loop (one
    tensor at a time), default (PyTorch's choice) or auto (fused on CUDA when
    PyTorch has it, the fastest eager baseline; else default).
    Returns (optimizer, impl)."""
    decay = {id(m.weight) for m in model.modules() if isinstance(m, QLinear)}
    quant = {id(p) for m in model.modules() if isinstance(m, (WeightQuant, ActQuant))
             for p in m.parameters()}
    groups = {"decay": [], "no_decay": [], "quant": []}
    for p in model.parameters():
        key = "quant" if id(p) in quant else "decay" if id(p) in decay else "no_decay"
        groups[key].append(p)
    param_groups = [
        {"params": groups["decay"], "lr": 1e-5, "weight_decay": 0.1},
        {"params": groups["no_decay"], "lr": 1e-5, "weight_decay": 0.0},
    ]
    if groups["quant"]:
        param_groups.append({"params": groups["quant"], "lr": 1e-3, "weight_decay": 0.0})
    has = inspect.signature(torch.optim.AdamW).parameters
    if impl == "auto":
        impl = "fused" if device.type == "cuda" and "fused" in has else "default"
    if impl != "default" and ("fused" if impl == "fused" else "foreach") not in has:
        raise ValueError("--adamw %s: not available in PyTorch %s" % (impl, torch.__version__))
    kwargs = {"fused": {"fused": True}, "foreach": {"foreach": True},
              "loop": {"foreach": False}, "default": {}}[impl]
    return torch.optim.AdamW(param_groups, lr=1e-5, **kwargs), impl


# ---------------------------------------------------------------------------
# FLOP count


def tower_flops(batch, seq, width, layers):
    """Forward matmul FLOPs of `layers` transformer blocks (MLP ratio 4):
    q/k/v/out and fc1/fc2 projections plus the two attention matmuls (Q K^T
    and A V over the full seq x seq square, causal or not)."""
    proj = 4 * 2 * batch * seq * width * width
    mlp = 2 * 2 * batch * seq * width * (4 * width)
    attn = 2 * 2 * batch * seq * seq * width
    return layers * (proj + mlp + attn)


def vision_forward_flops(c, batch):
    """Forward matmul FLOPs of the image tower for a batch."""
    n = (c["image_size"] // c["patch_size"]) ** 2
    w = c["v_width"]
    patch = 2 * batch * n * (3 * c["patch_size"] ** 2) * w
    head = 2 * batch * w * c["proj"]  # class token only
    return patch + tower_flops(batch, n + 1, w, c["v_layers"]) + head


def clip_forward_flops(c, batch):
    """Forward matmul FLOPs of both towers and the similarity matrix."""
    text = tower_flops(batch, c["context"], c["t_width"], c["t_layers"])
    text += 2 * batch * c["t_width"] * c["proj"]  # pooled EOT token only
    logits = 2 * batch * batch * c["proj"]
    return vision_forward_flops(c, batch) + text + logits


# ---------------------------------------------------------------------------
# Measurement helpers


def device_name(device):
    """GPU name, or the CPU model name from /proc/cpuinfo."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def set_blas_threads(n):
    """Sets the thread count of an OpenBLAS that PyTorch is linked with.

    Debian's python3-torch does its matmuls in the system OpenBLAS (pthread
    build), whose worker threads torch.set_num_threads does not control: with
    --threads 1 the process would still use two cores. Returns the OpenBLAS
    library name, or None when none is loaded (PyTorch wheels use MKL or their
    own OpenMP pool, which torch.set_num_threads already sets)."""
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if "libopenblas" in line}
    except OSError:
        return None
    for path in sorted(libs):
        try:
            ctypes.CDLL(path).openblas_set_num_threads(n)
            return path.rsplit("/", 1)[-1]
        except (OSError, AttributeError):
            continue
    return None


def sync(device):
    """Waits for queued GPU work (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def percentile(xs, q):
    """Linear-interpolated percentile q in [0, 100] of a non-empty list."""
    xs = sorted(xs)
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def peak_mem_mb(device):
    """Peak memory in MiB: allocated by PyTorch on GPU, process RSS on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # ru_maxrss is in KiB on Linux: the whole process, Python included.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def autocast(device, precision):
    """Context for the forward: bf16 autocast, or nothing for f32."""
    if precision == "f32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def bf16_supported(device):
    """Whether autocast to bf16 works for a matmul on this device."""
    try:
        a = torch.randn(4, 4, device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return (a @ a).dtype == torch.bfloat16
    except (RuntimeError, TypeError, AttributeError):
        return False


def make_inputs(c, batch, device):
    """Random pixels and token ids, with EOT (= vocab-1, the only id that
    large) at a random position of each row."""
    g = torch.Generator().manual_seed(1)
    pixels = torch.randn(batch, 3, c["image_size"], c["image_size"], generator=g)
    ids = torch.randint(0, c["vocab"] - 1, (batch, c["context"]), generator=g)
    eot = torch.randint(1, c["context"], (batch,), generator=g)
    ids[torch.arange(batch), eot] = c["vocab"] - 1
    return pixels.to(device), ids.to(device)


def build(c, quant, args, device, seed=0):
    """A CLIP of config c with quant scheme `quant` (a QUANT key) and the
    fake-quant implementation and attention of args; same init per seed."""
    torch.manual_seed(seed)
    scheme = QUANT[quant] + (args.fq_impl,) if QUANT[quant] else None
    return CLIP(c, scheme, args.sdpa).to(device)


def calibrate(model, args, device, *inputs):
    """One no-grad forward so activation quantizers take their LSQ init
    from the first batch (kept out of the timed and compiled steps)."""
    with torch.no_grad(), autocast(device, args.precision):
        model(*inputs)


def timed(fn, device):
    """Runs fn and returns (wall seconds, process CPU seconds). The CPU time
    is what the step cost this process; on a loaded machine it is steadier
    than the wall time (with --threads 1 it is the compute time of the step)."""
    sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    sync(device)
    return time.perf_counter() - t0, time.process_time() - c0


# ---------------------------------------------------------------------------
# Modes


def run_timed(args, device, base, step, flops, n_params, extra):
    """Runs step once (compile_s), warm-up steps, then args.steps timed steps,
    and returns the result record."""
    compile_s = timed(step, device)[0]
    for _ in range(args.warmup):
        step()
    both = [timed(step, device) for _ in range(args.steps)]
    times = [w for w, _ in both]
    med = statistics.median(times)
    rec = dict(base)
    rec.update(
        images_per_s=args.batch / med,
        step_ms_median=1e3 * med,
        step_ms_p10=1e3 * percentile(times, 10),
        step_ms_p90=1e3 * percentile(times, 90),
        cpu_ms_median=1e3 * statistics.median(c for _, c in both),
        compile_s=compile_s,
        peak_mem_mb=peak_mem_mb(device),
        params=n_params,
        flops_per_step=flops,
        tflops=flops / med / 1e12,
    )
    peak = args.peak_tflops
    if peak is None and device.type == "cuda":
        name = device_name(device)
        peak = next((v for k, v in PEAK_BF16_TFLOPS if k in name), None)
    if peak:
        rec["peak_tflops_bf16"] = peak
        rec["mfu"] = rec["tflops"] / peak
    rec.update(extra)
    return rec


def mode_train(args, device, base):
    """Times forward + loss + backward + AdamW steps of both towers."""
    c = CONFIGS[args.config]
    model = build(c, args.quant, args, device)
    pixels, ids = make_inputs(c, args.batch, device)
    opt, opt_impl = make_optimizer(model, device, args.adamw)
    calibrate(model, args, device, pixels, ids)
    fwd = torch.compile(model) if args.compile else model

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast(device, args.precision):
            loss = fwd(pixels, ids)
        loss.backward()
        opt.step()

    n_params = sum(p.numel() for p in model.parameters())
    return run_timed(args, device, base, step, 3 * clip_forward_flops(c, args.batch),
                     n_params, {"optimizer": "adamw-" + opt_impl})


def mode_embed(args, device, base):
    """Times the image-tower forward without gradients."""
    c = CONFIGS[args.config]
    model = build(c, args.quant, args, device)
    pixels, ids = make_inputs(c, args.batch, device)
    calibrate(model, args, device, pixels, ids)
    vision = model.vision_model.eval()
    fwd = torch.compile(vision) if args.compile else vision

    def step():
        with torch.no_grad(), autocast(device, args.precision):
            fwd(pixels)

    n_params = sum(p.numel() for p in vision.parameters())
    return run_timed(args, device, base, step, vision_forward_flops(c, args.batch),
                     n_params, {})


def mode_fakequant_cost(args, device, base):
    """Float and quantized models of the same config, each with its own
    AdamW, timed in alternating rounds of args.steps steps each. Forward +
    backward and the optimizer step are timed separately; the ratios are
    quantized / float of the medians over all steps."""
    c = CONFIGS[args.config]
    quant = args.quant if args.quant != "none" else "w8a8"
    pixels, ids = make_inputs(c, args.batch, device)
    runs = {}
    for name, q in (("float", "none"), ("quant", quant)):
        model = build(c, q, args, device)
        opt, _ = make_optimizer(model, device, args.adamw)
        calibrate(model, args, device, pixels, ids)
        fwd = torch.compile(model) if args.compile else model
        runs[name] = dict(fwd=fwd, opt=opt, fb=[], fb_cpu=[], opt_t=[], rounds=[])

    def fwd_bwd(r):
        r["opt"].zero_grad(set_to_none=True)
        with autocast(device, args.precision):
            loss = r["fwd"](pixels, ids)
        loss.backward()

    compile_s = {}
    for name, r in runs.items():
        compile_s[name] = timed(lambda: (fwd_bwd(r), r["opt"].step()), device)[0]
        for _ in range(args.warmup):
            fwd_bwd(r)
            r["opt"].step()
    for _ in range(args.rounds):
        for r in runs.values():
            fb = []
            for _ in range(args.steps):
                fb.append(timed(lambda: fwd_bwd(r), device))
                r["opt_t"].append(timed(r["opt"].step, device)[0])
            r["fb"] += [wall for wall, _ in fb]
            r["fb_cpu"] += [cpu_s for _, cpu_s in fb]
            r["rounds"].append(statistics.median(w for w, _ in fb))

    fl, qu = runs["float"], runs["quant"]
    med = {k: statistics.median(r["fb"]) for k, r in runs.items()}
    cpu = {k: statistics.median(r["fb_cpu"]) for k, r in runs.items()}
    tot = {k: statistics.median([a + b for a, b in zip(r["fb"], r["opt_t"])])
           for k, r in runs.items()}
    round_ratios = [q / f for q, f in zip(qu["rounds"], fl["rounds"])]
    rec = dict(base)
    rec.update(
        quant=quant,
        rounds=args.rounds,
        float_fwd_bwd_ms_median=1e3 * med["float"],
        quant_fwd_bwd_ms_median=1e3 * med["quant"],
        ratio_fwd_bwd=med["quant"] / med["float"],
        ratio_fwd_bwd_rounds_median=statistics.median(round_ratios),
        ratio_fwd_bwd_rounds_min=min(round_ratios),
        ratio_fwd_bwd_rounds_max=max(round_ratios),
        float_fwd_bwd_cpu_ms_median=1e3 * cpu["float"],
        quant_fwd_bwd_cpu_ms_median=1e3 * cpu["quant"],
        ratio_fwd_bwd_cpu=cpu["quant"] / cpu["float"],
        float_train_step_ms_median=1e3 * tot["float"],
        quant_train_step_ms_median=1e3 * tot["quant"],
        ratio_train_step=tot["quant"] / tot["float"],
        compile_s=compile_s["quant"],
        peak_mem_mb=peak_mem_mb(device),
        flops_per_step=3 * clip_forward_flops(c, args.batch),
        float_compile_s=compile_s["float"],
    )
    return rec


MODES = {"train": mode_train, "embed": mode_embed, "fakequant-cost": mode_fakequant_cost}


# ---------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="PyTorch CLIP QAT benchmark (reference for qatclip bench). "
                    "Prints one JSON line per result.")
    p.add_argument("--config", choices=sorted(CONFIGS), default="tiny",
                   help="model size (default tiny)")
    p.add_argument("--mode", choices=sorted(MODES), default="train",
                   help="what to time (default train)")
    p.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--steps", type=int, default=10,
                   help="timed steps (per model and round in fakequant-cost; default 10)")
    p.add_argument("--warmup", type=int, default=2,
                   help="untimed steps after the first one (default 2)")
    p.add_argument("--rounds", type=int, default=5,
                   help="fakequant-cost: alternating float/quant rounds (default 5)")
    p.add_argument("--quant", choices=list(QUANT), default="w8a8",
                   help="fake quant on every Linear (default w8a8; "
                        "fakequant-cost treats none as w8a8)")
    p.add_argument("--precision", choices=["f32", "bf16"], default="f32",
                   help="bf16 = torch.autocast to bfloat16 (default f32)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model (PyTorch >= 2.0)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads and OpenBLAS threads (default 1 on CPU, "
                        "PyTorch's default on CUDA; 0 = PyTorch's default)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="auto = cuda when available (default)")
    p.add_argument("--attention", choices=["auto", "manual", "sdpa"], default="auto",
                   help="sdpa = F.scaled_dot_product_attention; auto = sdpa when "
                        "PyTorch has it (default)")
    p.add_argument("--adamw", choices=["auto", "fused", "foreach", "loop", "default"],
                   default="auto", help="AdamW implementation; auto = fused on CUDA when "
                                        "available, else PyTorch's default (default auto)")
    p.add_argument("--fq-impl", choices=["aten", "composite"], default="aten",
                   help="aten = torch._fake_quantize_learnable_per_*_affine (default); "
                        "composite = the same maths in plain tensor ops, which "
                        "torch.compile can fuse")
    p.add_argument("--tf32", action="store_true",
                   help="allow TF32 matmuls on CUDA for f32 (PyTorch's default is off)")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="dense bf16 peak for MFU (default: looked up from the GPU name)")
    args = p.parse_args(argv)
    for name in ("batch", "steps", "rounds"):
        if getattr(args, name) < 1:
            p.error("--%s must be >= 1, got %d" % (name, getattr(args, name)))
    if args.warmup < 0:
        p.error("--warmup must be >= 0, got %d" % args.warmup)
    if args.threads is not None and args.threads < 0:
        p.error("--threads must be >= 0, got %d" % args.threads)
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("bench.py: --device cuda: CUDA is not available in this PyTorch")
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")
    if args.threads is None and device.type == "cpu":
        args.threads = 1
    blas = None
    if args.threads:  # None or 0: PyTorch's defaults
        torch.set_num_threads(args.threads)
        blas = set_blas_threads(args.threads)
    has_sdpa = hasattr(F, "scaled_dot_product_attention")
    args.sdpa = args.attention == "sdpa" or (args.attention == "auto" and has_sdpa)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.allow_tf32 = args.tf32

    base = dict(
        impl="pytorch", torch=torch.__version__, mode=args.mode, config=args.config,
        quant=args.quant, precision=args.precision, compile=args.compile,
        device=device_name(device), device_type=device.type,
        threads=torch.get_num_threads(), batch=args.batch, steps=args.steps,
        attention="sdpa" if args.sdpa else "manual",
    )
    if args.quant != "none" or args.mode == "fakequant-cost":
        base["fq_impl"] = args.fq_impl
    if blas:
        base["blas"] = blas
    if device.type == "cuda":
        base["tf32"] = args.tf32

    def unsupported(msg):
        print(json.dumps(dict(base, error=msg)), flush=True)
        return 0

    if args.sdpa and not has_sdpa:
        return unsupported("--attention sdpa: F.scaled_dot_product_attention needs PyTorch >= 2.0")
    if args.precision == "bf16" and not bf16_supported(device):
        return unsupported("bf16 autocast is not supported on %s by PyTorch %s"
                           % (device.type, torch.__version__))
    if args.adamw in ("fused", "foreach"):
        if args.adamw not in inspect.signature(torch.optim.AdamW).parameters:
            return unsupported("--adamw %s: not available in PyTorch %s"
                               % (args.adamw, torch.__version__))
    if args.compile and not hasattr(torch, "compile"):
        return unsupported("torch.compile needs PyTorch >= 2.0")
    try:
        rec = MODES[args.mode](args, device, base)
    except Exception as e:  # report in the JSON stream, then decide the exit code
        kind = "compile" if args.compile else "bf16" if args.precision == "bf16" else None
        msg = "%s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else "")
        print(json.dumps(dict(base, error=msg)), flush=True)
        # Feature failures (compile, bf16) are results; anything else is a bug.
        return 0 if kind else 1
    print(json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
