#!/usr/bin/python3
"""Dequantize a compressed-tensors export with numpy only.

Written from the compressed-tensors description alone (config.json's
quantization_config; <m>.weight int8 or <m>.weight_packed int32 +
<m>.weight_shape; <m>.weight_scale; <m>.weight_zero_point when not
symmetric; value = (q - zero_point) * scale), without qatclip's code.

Usage:
  ct_reader.py EXPORT_DIR [REFERENCE_DIR]

With REFERENCE_DIR (a fake-quant-f32 export of the same run, or any float
HF folder with the same parameter names) every dequantized weight is
compared bit for bit with the reference's float32 weight. Exit status 1 on
any mismatch or schema problem. Local tooling only: tests never run it.
"""
import json
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F64": np.float64, "I8": np.int8, "I32": np.int32,
          "I64": np.int64, "U8": np.uint8, "F16": np.float16}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype=DTYPES[info["dtype"]])
        out[name] = arr.reshape(info["shape"])
    return out


def unpack_int32(packed, num_bits, rows, cols):
    """compressed-tensors pack-quantized: 32 // num_bits values per int32 along
    the last axis, value i of a word in bits [i*num_bits, (i+1)*num_bits), each
    stored with an offset of 2**(num_bits-1)."""
    per = 32 // num_bits
    mask = (1 << num_bits) - 1
    u = packed.astype(np.int64) & 0xFFFFFFFF
    vals = np.zeros((packed.shape[0], packed.shape[1] * per), dtype=np.int64)
    for i in range(per):
        vals[:, i::per] = (u >> (num_bits * i)) & mask
    return (vals[:rows, :cols] - (1 << (num_bits - 1))).astype(np.int32)


def dequantize(tensors, module, args, packed):
    bits = args["num_bits"]
    if packed:
        rows, cols = [int(x) for x in tensors[module + ".weight_shape"]]
        q = unpack_int32(tensors[module + ".weight_packed"], bits, rows, cols)
    else:
        q = tensors[module + ".weight"].astype(np.int32)
        rows = q.shape[0]
        q = q.reshape(rows, -1)
        cols = q.shape[1]
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if q.min() < lo or q.max() > hi:
        raise ValueError(f"{module}: integers outside [{lo}, {hi}]")
    scale = tensors[module + ".weight_scale"].astype(np.float32)
    zp = np.zeros_like(scale, dtype=np.int32)
    if not args["symmetric"]:
        z = tensors[module + ".weight_zero_point"]
        if packed and args["strategy"] in ("channel", "group"):
            z = unpack_int32(z.T.copy(), bits, scale.shape[1], rows).T
        zp = z.astype(np.int32).reshape(scale.shape)
    strategy = args["strategy"]
    if strategy == "tensor":
        s, z = scale.reshape(()), zp.reshape(())
        w = (q - z).astype(np.float32) * s
    elif strategy == "channel":
        w = (q - zp.reshape(rows, 1)).astype(np.float32) * scale.reshape(rows, 1)
    elif strategy == "group":
        g = args["group_size"]
        s = np.repeat(scale, g, axis=1)
        z = np.repeat(zp, g, axis=1)
        w = (q - z).astype(np.float32) * s
    else:
        raise ValueError(f"{module}: unsupported strategy {strategy}")
    return w.astype(np.float32)


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__)
        return 2
    export = sys.argv[1]
    with open(export + "/config.json") as f:
        qc = json.load(f)["quantization_config"]
    assert qc["quant_method"] == "compressed-tensors", qc["quant_method"]
    assert qc["quantization_status"] == "compressed", qc["quantization_status"]
    packed = qc["format"] == "pack-quantized"
    tensors = read_safetensors(export + "/model.safetensors")
    ref = read_safetensors(sys.argv[2] + "/model.safetensors") if len(sys.argv) == 3 else None
    bad = 0
    n = 0
    for gname, group in qc["config_groups"].items():
        args = group["weights"]
        acts = group["input_activations"]
        for module in group["targets"]:
            if acts is not None and not acts["dynamic"]:
                s = tensors[module + ".input_scale"]
                assert s.shape == (1,) and s.dtype == np.float32, (module, s.shape, s.dtype)
                if not acts["symmetric"]:
                    assert tensors[module + ".input_zero_point"].dtype == np.int8
            if args is None:
                continue
            w = dequantize(tensors, module, args, packed)
            n += 1
            if ref is not None:
                r = ref[module + ".weight"].astype(np.float32).reshape(w.shape)
                if not np.array_equal(w.view(np.uint32), r.view(np.uint32)):
                    d = np.abs(w - r).max()
                    print(f"MISMATCH {module}: max abs difference {d}")
                    bad += 1
    for module in qc["ignore"]:
        assert tensors[module + ".weight"].dtype == np.float32, module
    print(f"{export}: {qc['format']}, {len(qc['config_groups'])} config groups, "
          f"{n} weights dequantized, {len(qc['ignore'])} ignored modules"
          + ("" if ref is None else f", {bad} mismatches against {sys.argv[2]}"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
