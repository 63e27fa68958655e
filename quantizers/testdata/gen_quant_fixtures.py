#!/usr/bin/python3
"""Writes quantizers/testdata/quantizers/<case>/: PyTorch reference outputs
for TestFixtureQuantizers, in the format of ../shared/golden/quantizers
(case.json with the op and its scalar parameters; x, g, y, dx and the
parameter gradients as float32 .npy).

Run with Debian's PyTorch (1.13): /usr/bin/python3 gen_quant_fixtures.py
from this folder. Rounding is half to even; every case puts half-way ties
(including ties on the range boundaries) and outliers in its first values.

Ops:
  fake_quant_per_tensor / fake_quant_per_channel:
      torch.fake_quantize_per_{tensor,channel}_affine
  lsq_per_tensor / lsq_per_channel:
      torch._fake_quantize_learnable_per_{tensor,channel}_affine, including
      non-integer (and half-way) zero points
  fake_quant_per_group / lsq_per_group: x [out, in] quantized per group of
      group_size inputs: the per-channel op on x.reshape(-1, group_size) with
      the [out, in/group_size] parameters flattened
  pact: y = round(clip(x, 0, a) * n / a) * a / n, n = 2^bits - 1,
      dx = g where 0 <= x < a, dalpha = sum of g where x >= a
  observer_minmax: scale and zero point of torch.ao.quantization's
      MinMaxObserver / PerChannelMinMaxObserver on x (keys bits, symmetric,
      signed, narrow_range, and axis when per channel), and y, x
      fake-quantized with them (forward only: x, y, scale, zero_point)
"""

import json
import os
import shutil

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "quantizers")


def qrange(bits, signed, narrow):
    if signed:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        return (lo + 1 if narrow else lo), hi
    return 0, (1 << bits) - 1 - (1 if narrow else 0)


def with_ties(x, scale, zp, qmin, qmax):
    """Overwrites the first values of x (flat) with half-way ties inside the
    range and on both boundaries, zero and two outliers."""
    flat = x.reshape(-1)
    s = float(scale)
    special = [0.5, 1.5, 2.5, -0.5, -1.5, -2.5,
               qmin - zp - 0.5, qmax - zp + 0.5, qmin - zp - 1.5, qmax - zp + 1.5]
    vals = [np.float32(v * s) for v in special] + [0.0, 40.0 * s * (qmax - qmin), -40.0 * s * (qmax - qmin)]
    n = min(len(vals), flat.numel())
    flat[:n] = torch.tensor(vals[:n], dtype=torch.float32)
    return x


def save(name, spec, arrays):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(spec, f, indent=1)
        f.write("\n")
    for k, v in arrays.items():
        a = v.detach().cpu().numpy() if torch.is_tensor(v) else np.asarray(v)
        np.save(os.path.join(d, k + ".npy"), a.astype(np.float32))


def case_tensor(name, shape, bits, signed, narrow, scale, zp, learnable, zp_float=None):
    qmin, qmax = qrange(bits, signed, narrow)
    x = torch.randn(*shape) * scale * (qmax - qmin) / 3
    x = with_ties(x, scale, zp if zp_float is None else round(zp_float), qmin, qmax)
    g = torch.randn(*shape)
    x.requires_grad_(True)
    if learnable:
        gf = 1.0 / np.sqrt(x.numel() * qmax)
        zval = float(zp if zp_float is None else zp_float)
        s_t = torch.tensor([scale], dtype=torch.float32, requires_grad=True)
        z_t = torch.tensor([zval], dtype=torch.float32, requires_grad=True)
        y = torch._fake_quantize_learnable_per_tensor_affine(x, s_t, z_t, qmin, qmax, gf)
        (y * g).sum().backward()
        spec = {"op": "lsq_per_tensor", "scale": scale, "zero_point": zval, "qmin": qmin, "qmax": qmax,
                "grad_factor": gf}
        save(name, spec, {"x": x, "g": g, "y": y, "dx": x.grad, "dscale": s_t.grad, "dzero_point": z_t.grad})
    else:
        y = torch.fake_quantize_per_tensor_affine(x, scale, zp, qmin, qmax)
        (y * g).sum().backward()
        spec = {"op": "fake_quant_per_tensor", "scale": scale, "zero_point": zp, "qmin": qmin, "qmax": qmax}
        save(name, spec, {"x": x, "g": g, "y": y, "dx": x.grad})


def channel_params(c, qmin, qmax, symmetric, fractional_zp=False):
    base = [0.25, 0.1, 0.05, 0.125, 0.3, 0.0625, 0.2, 0.5]
    scale = torch.tensor([base[i % len(base)] * (1 + 0.01 * (i // len(base))) for i in range(c)],
                         dtype=torch.float32)
    if symmetric:
        zp = torch.zeros(c)
    else:
        zp = torch.randint(qmin, qmax + 1, (c,)).float()
        if fractional_zp:
            frac = [0.5, -0.3, 0.2, 0.5, 0.7, -0.5, 0.0, 0.4]
            zp = zp + torch.tensor([frac[i % len(frac)] for i in range(c)])
    return scale, zp


def tie_channels(x, axis, scale, zp, qmin, qmax):
    xm = x.movedim(axis, 0)
    for ch in range(xm.shape[0]):
        row = xm[ch].reshape(-1).clone()
        with_ties(row, scale[ch].item(), int(round(zp[ch].item())), qmin, qmax)
        xm[ch] = row.reshape(xm[ch].shape)
    return xm.movedim(0, axis).contiguous()


def case_channel(name, shape, axis, bits, signed, narrow, symmetric, learnable, fractional_zp=False):
    qmin, qmax = qrange(bits, signed, narrow)
    c = shape[axis]
    scale, zp = channel_params(c, qmin, qmax, symmetric, fractional_zp)
    bshape = [1] * len(shape)
    bshape[axis] = c
    x = torch.randn(*shape) * scale.reshape(bshape) * (qmax - qmin) / 3
    x = tie_channels(x, axis, scale, zp, qmin, qmax)
    g = torch.randn(*shape)
    x.requires_grad_(True)
    if learnable:
        gf = 1.0 / np.sqrt(x.numel() * qmax)
        s_t = scale.clone().requires_grad_(True)
        z_t = zp.clone().requires_grad_(True)
        y = torch._fake_quantize_learnable_per_channel_affine(x, s_t, z_t, axis, qmin, qmax, gf)
        (y * g).sum().backward()
        spec = {"op": "lsq_per_channel", "axis": axis, "qmin": qmin, "qmax": qmax, "grad_factor": gf}
        save(name, spec, {"x": x, "g": g, "y": y, "dx": x.grad, "scale": scale, "zero_point": zp,
                          "dscale": s_t.grad, "dzero_point": z_t.grad})
    else:
        y = torch.fake_quantize_per_channel_affine(x, scale, zp.to(torch.int32), axis, qmin, qmax)
        (y * g).sum().backward()
        spec = {"op": "fake_quant_per_channel", "axis": axis, "qmin": qmin, "qmax": qmax}
        save(name, spec, {"x": x, "g": g, "y": y, "dx": x.grad, "scale": scale, "zero_point": zp})


def case_group(name, out, inp, group, bits, signed, narrow, symmetric, learnable):
    qmin, qmax = qrange(bits, signed, narrow)
    ng = inp // group
    scale, zp = channel_params(out * ng, qmin, qmax, symmetric)
    x2 = torch.randn(out * ng, group) * scale.reshape(-1, 1) * (qmax - qmin) / 3
    x2 = tie_channels(x2, 0, scale, zp, qmin, qmax)
    x = x2.reshape(out, inp).clone().requires_grad_(True)
    g = torch.randn(out, inp)
    xv = x.reshape(out * ng, group)
    if learnable:
        gf = 1.0 / np.sqrt(x.numel() * qmax)
        s_t = scale.clone().requires_grad_(True)
        z_t = zp.clone().requires_grad_(True)
        y = torch._fake_quantize_learnable_per_channel_affine(xv, s_t, z_t, 0, qmin, qmax, gf).reshape(out, inp)
        (y * g).sum().backward()
        spec = {"op": "lsq_per_group", "group_size": group, "qmin": qmin, "qmax": qmax, "grad_factor": gf}
        save(name, spec, {"x": x, "g": g, "y": y, "dx": x.grad, "scale": scale.reshape(out, ng),
                          "zero_point": zp.reshape(out, ng), "dscale": s_t.grad.reshape(out, ng),
                          "dzero_point": z_t.grad.reshape(out, ng)})
    else:
        y = torch.fake_quantize_per_channel_affine(xv, scale, zp.to(torch.int32), 0, qmin, qmax).reshape(out, inp)
        (y * g).sum().backward()
        spec = {"op": "fake_quant_per_group", "group_size": group, "qmin": qmin, "qmax": qmax}
        save(name, spec, {"x": x, "g": g, "y": y, "dx": x.grad, "scale": scale.reshape(out, ng),
                          "zero_point": zp.reshape(out, ng)})


class PACTRef(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha, n):
        ctx.save_for_backward(x, alpha)
        return torch.round(torch.clamp(x, min=0).minimum(alpha) * n / alpha) * alpha / n

    @staticmethod
    def backward(ctx, g):
        x, alpha = ctx.saved_tensors
        dx = g * ((x >= 0) & (x < alpha))
        dalpha = (g * (x >= alpha)).sum().reshape(alpha.shape)
        return dx, dalpha, None


def case_pact(name, shape, bits, alpha):
    n = (1 << bits) - 1
    a = torch.tensor([alpha], dtype=torch.float32)
    x = torch.randn(*shape) * alpha * 0.8
    s = a.item() / n
    flat = x.reshape(-1)
    vals = [a.item(), a.item() * 1.001, -0.1, 0.0, 0.5 * s, 1.5 * s, 2.5 * s, 10 * alpha]
    flat[:len(vals)] = torch.tensor(vals, dtype=torch.float32)
    g = torch.randn(*shape)
    x.requires_grad_(True)
    a.requires_grad_(True)
    y = PACTRef.apply(x, a, n)
    (y * g).sum().backward()
    save(name, {"op": "pact", "alpha": alpha, "bits": bits}, {"x": x, "g": g, "y": y, "dx": x.grad, "dalpha": a.grad})


def case_observer(name, shape, bits, symmetric, signed, narrow, axis=None, default_range=False):
    from torch.ao.quantization.observer import MinMaxObserver, PerChannelMinMaxObserver
    qmin, qmax = qrange(bits, signed, narrow)
    x = torch.randn(*shape) * 2 + (0 if symmetric else 0.7)
    kw = {"dtype": torch.qint8 if signed else torch.quint8}
    if not default_range:
        kw.update(quant_min=qmin, quant_max=qmax)
    if axis is None:
        kw["qscheme"] = torch.per_tensor_symmetric if symmetric else torch.per_tensor_affine
        obs = MinMaxObserver(**kw)
    else:
        kw["qscheme"] = torch.per_channel_symmetric if symmetric else torch.per_channel_affine
        obs = PerChannelMinMaxObserver(ch_axis=axis, **kw)
    obs(x)
    scale, zp = obs.calculate_qparams()
    if axis is None:
        y = torch.fake_quantize_per_tensor_affine(x, float(scale), int(zp), qmin, qmax)
    else:
        y = torch.fake_quantize_per_channel_affine(x, scale, zp.to(torch.int32), axis, qmin, qmax)
    spec = {"op": "observer_minmax", "bits": bits, "symmetric": symmetric, "signed": signed,
            "narrow_range": narrow}
    if axis is not None:
        spec["axis"] = axis
    save(name, spec, {"x": x, "y": y, "scale": scale.reshape(-1), "zero_point": zp.reshape(-1)})


def main():
    torch.manual_seed(20261127)
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    # Per tensor: bit widths 3, 5, 6, 7, narrow ranges, other ranks.
    case_tensor("ste_tensor_w3_sym", (4, 5, 6), 3, True, False, 0.25, 0, False)
    case_tensor("ste_tensor_w5_asym", (7, 11), 5, False, False, 0.1, 13, False)
    case_tensor("ste_tensor_w6_sym_narrow", (2, 3, 4, 5), 6, True, True, 0.125, 0, False)
    case_tensor("ste_tensor_w7_asym_narrow", (97,), 7, False, True, 0.05, 60, False)
    case_tensor("ste_tensor_w8_unsigned_sym", (9, 13), 8, False, False, 0.0625, 128, False)
    case_tensor("lsq_tensor_w3_sym", (6, 10), 3, True, False, 0.25, 0, True)
    case_tensor("lsq_tensor_w5_asym", (3, 4, 9), 5, False, False, 0.1, 11, True)
    case_tensor("lsq_tensor_w6_sym_narrow", (50,), 6, True, True, 0.125, 0, True)
    case_tensor("lsq_tensor_w7_asym_narrow", (8, 16), 7, False, True, 0.05, 70, True)
    case_tensor("lsq_tensor_w4_zp_half", (5, 12), 4, False, False, 0.25, 0, True, zp_float=6.5)
    case_tensor("lsq_tensor_w4_zp_frac", (5, 12), 4, False, False, 0.25, 0, True, zp_float=7.3)
    case_tensor("lsq_tensor_w4_signed_zp_neg", (5, 12), 4, True, False, 0.25, 0, True, zp_float=-2.7)
    # Per channel on axis 1 and on the last axis.
    case_channel("ste_channel_axis1_w3_sym", (4, 6, 5), 1, 3, True, False, True, False)
    case_channel("ste_channel_axis1_w5_asym", (3, 8, 7), 1, 5, False, False, False, False)
    case_channel("ste_channel_last_w6_sym_narrow", (5, 4, 9), 2, 6, True, True, True, False)
    case_channel("ste_channel_last_w7_asym", (12, 10), 1, 7, False, False, False, False)
    case_channel("lsq_channel_axis1_w3_sym", (4, 6, 5), 1, 3, True, False, True, True)
    case_channel("lsq_channel_axis1_w5_asym", (3, 8, 7), 1, 5, False, False, False, True)
    case_channel("lsq_channel_last_w6_sym_narrow", (5, 4, 9), 2, 6, True, True, True, True)
    case_channel("lsq_channel_last_w7_asym_narrow", (12, 10), 1, 7, False, True, False, True)
    case_channel("lsq_channel_w4_asym_zp_frac", (8, 12), 0, 4, False, False, False, True, fractional_zp=True)
    # Per group along the input (last) axis.
    case_group("ste_group_w4_sym_g8", 6, 32, 8, 4, True, False, True, False)
    case_group("ste_group_w3_asym_g16", 4, 48, 16, 3, False, False, False, False)
    case_group("lsq_group_w4_sym_g8", 6, 32, 8, 4, True, False, True, True)
    case_group("lsq_group_w6_asym_g4", 5, 24, 4, 6, False, False, False, True)
    # PACT.
    case_pact("pact_w3", (6, 17), 3, 2.0)
    case_pact("pact_w5", (5, 9, 4), 5, 0.75)
    case_pact("pact_w6", (64,), 6, 3.3)
    case_pact("pact_w7", (11, 13), 7, 1.25)
    # Observers (forward and quantization parameters).
    case_observer("obs_tensor_int8_sym", (9, 14), 8, True, True, False)
    case_observer("obs_tensor_uint8_affine", (9, 14), 8, False, False, False)
    case_observer("obs_tensor_uint8_sym", (30,), 8, True, False, False, default_range=True)
    case_observer("obs_tensor_int4_sym_narrow", (6, 6), 4, True, True, True)
    case_observer("obs_tensor_uint5_affine", (40,), 5, False, False, False)
    case_observer("obs_channel_int8_sym", (6, 10), 8, True, True, False, axis=0)
    case_observer("obs_channel_uint8_affine_last", (5, 4, 7), 8, False, False, False, axis=2)
    case_observer("obs_channel_int3_affine", (4, 9), 3, False, True, False, axis=1)


if __name__ == "__main__":
    main()
