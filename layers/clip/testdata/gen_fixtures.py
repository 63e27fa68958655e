#!/usr/bin/python3
"""Generates the CLIP parity fixtures of layers/clip/testdata.

Run from this folder with Debian's python3-torch (no transformers needed):

    /usr/bin/python3 gen_fixtures.py

The reference forward follows openai/CLIP's clip/model.py structure (a conv
patch embedding, torch.nn.MultiheadAttention blocks in [L, N, D] layout, an
additive causal mask) written here from scratch, with HF CLIPModel's choices
made configurable: activation (quick_gelu or exact gelu), LayerNorm epsilon
and end-of-text pooling (argmax when eos_token_id == 2 or for openai layout,
else the first eos_token_id position, 0 when absent). Weights are rounded to
their stored dtype (BF16/F16) before the float32 reference runs, so the Go
side sees exactly the weights the reference used.

Two models, each in its own folder with pixel_values.npy, input_ids.npy,
image_features.npy, text_features.npy and logits_per_image.npy:

- hf-gelu-sharded/: HF naming, config.json, two shards and
  model.safetensors.index.json; weights mixed BF16 and F16 (embeddings F16),
  exact gelu, eps 1e-6, 3 and 5 heads, eos_token_id 5 (not the largest id),
  input length 10 < max_position_embeddings 12, a stray position_ids buffer.
- openai-f16/: openai/CLIP state-dict naming (in_proj_weight, visual.proj,
  ...) in F16 without config.json (the loader infers it: heads = width/64).
"""

import json
import math
import os
import struct

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


def act_fn(name):
    if name == "quick_gelu":
        return lambda x: x * torch.sigmoid(1.702 * x)
    if name == "gelu":
        return lambda x: F.gelu(x)
    raise ValueError(name)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width, heads, inter, act, eps):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width, eps=eps)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, inter))
        self.mlp.add_module("c_proj", nn.Linear(inter, width))
        self.ln_2 = nn.LayerNorm(width, eps=eps)
        self.act = act_fn(act)

    def forward(self, x, mask):
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        h = self.mlp.c_proj(self.act(self.mlp.c_fc(self.ln_2(x))))
        return x + h


class Transformer(nn.Module):
    def __init__(self, width, layers, heads, inter, act, eps):
        super().__init__()
        self.resblocks = nn.ModuleList(
            [ResidualAttentionBlock(width, heads, inter, act, eps) for _ in range(layers)])

    def forward(self, x, mask=None):
        for b in self.resblocks:
            x = b(x, mask)
        return x


class VisionTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        v = c["vision_config"]
        w, p = v["hidden_size"], v["patch_size"]
        self.conv1 = nn.Conv2d(v["num_channels"], w, kernel_size=p, stride=p, bias=False)
        grid = v["image_size"] // p
        self.class_embedding = nn.Parameter(torch.randn(w) * 0.5)
        self.positional_embedding = nn.Parameter(torch.randn(grid * grid + 1, w) * 0.2)
        self.ln_pre = nn.LayerNorm(w, eps=v["layer_norm_eps"])
        self.transformer = Transformer(w, v["num_hidden_layers"], v["num_attention_heads"],
                                       v["intermediate_size"], v["hidden_act"], v["layer_norm_eps"])
        self.ln_post = nn.LayerNorm(w, eps=v["layer_norm_eps"])
        self.proj = nn.Parameter(torch.randn(w, c["projection_dim"]) * w ** -0.5)

    def forward(self, x):
        x = self.conv1(x)                      # [N, w, g, g]
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        cls = self.class_embedding + torch.zeros(x.shape[0], 1, x.shape[-1])
        x = torch.cat([cls, x], dim=1) + self.positional_embedding
        x = self.ln_pre(x).permute(1, 0, 2)    # [L, N, D]
        x = self.transformer(x).permute(1, 0, 2)
        return self.ln_post(x[:, 0, :]) @ self.proj


class CLIP(nn.Module):
    def __init__(self, c, pooling):
        super().__init__()
        t = c["text_config"]
        self.visual = VisionTransformer(c)
        w = t["hidden_size"]
        self.ctx_len = t["max_position_embeddings"]
        self.transformer = Transformer(w, t["num_hidden_layers"], t["num_attention_heads"],
                                       t["intermediate_size"], t["hidden_act"], t["layer_norm_eps"])
        self.token_embedding = nn.Embedding(t["vocab_size"], w)
        self.positional_embedding = nn.Parameter(torch.randn(self.ctx_len, w) * 0.1)
        self.ln_final = nn.LayerNorm(w, eps=t["layer_norm_eps"])
        self.text_projection = nn.Parameter(torch.randn(w, c["projection_dim"]) * w ** -0.5)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.eos = t["eos_token_id"]
        self.pooling = pooling

    def encode_text(self, ids):
        L = ids.shape[1]
        x = self.token_embedding(ids) + self.positional_embedding[:L]
        mask = torch.full((L, L), float("-inf")).triu(1)
        x = self.transformer(x.permute(1, 0, 2), mask).permute(1, 0, 2)
        x = self.ln_final(x)
        if self.pooling == "argmax" or self.eos == 2:
            pos = ids.argmax(dim=-1)
        else:
            pos = (ids == self.eos).int().argmax(dim=-1)  # first eos, 0 when none
        return x[torch.arange(x.shape[0]), pos] @ self.text_projection

    def forward(self, pixels, ids):
        img = self.visual(pixels)
        txt = self.encode_text(ids)
        ni = img / img.norm(dim=-1, keepdim=True)
        nt = txt / txt.norm(dim=-1, keepdim=True)
        return img, txt, self.logit_scale.exp() * ni @ nt.t()


def randomize(model):
    """Makes every parameter non-trivial (LayerNorm affine, biases)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ln" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            elif "token_embedding" in name:
                p.copy_(0.5 * torch.randn_like(p))


def round_to(model, dtype_of):
    """Rounds each parameter to its storage dtype (kept as float32)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(p.to(dtype_of(name)).float())


def openai_to_hf(sd, cfg):
    """Maps an openai/CLIP state dict to HF CLIPModel names (DESIGN.md table)."""
    out = {}
    blk = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "mlp.c_fc": "mlp.fc1",
           "mlp.c_proj": "mlp.fc2", "attn.out_proj": "self_attn.out_proj"}
    for k, v in sd.items():
        if ".resblocks." in k:
            tower = "vision_model" if k.startswith("visual.") else "text_model"
            rest = k.split(".resblocks.")[1]
            n, sub = rest.split(".", 1)
            pre = f"{tower}.encoder.layers.{n}."
            if sub.startswith("attn.in_proj_"):
                kind = sub[len("attn.in_proj_"):]
                for part, qkv in zip(v.chunk(3, dim=0), "qkv"):
                    out[pre + f"self_attn.{qkv}_proj.{kind}"] = part
                continue
            for a, b in blk.items():
                if sub.startswith(a + "."):
                    sub = b + sub[len(a):]
            out[pre + sub] = v
            continue
        simple = {
            "visual.class_embedding": "vision_model.embeddings.class_embedding",
            "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
            "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
            "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
            "positional_embedding": "text_model.embeddings.position_embedding.weight",
            "logit_scale": "logit_scale",
        }
        if k in simple:
            out[simple[k]] = v
        elif k == "visual.proj":
            out["visual_projection.weight"] = v.t()
        elif k == "text_projection":
            out["text_projection.weight"] = v.t()
        else:
            for a, b in {"visual.ln_pre.": "vision_model.pre_layrnorm.",
                         "visual.ln_post.": "vision_model.post_layernorm.",
                         "ln_final.": "text_model.final_layer_norm."}.items():
                if k.startswith(a):
                    out[b + k[len(a):]] = v
    return out


def tensor_bytes(t, dtype):
    t = t.detach().contiguous()
    if dtype == "F32":
        return t.float().numpy().astype("<f4").tobytes()
    if dtype == "F16":
        return t.float().numpy().astype("<f2").tobytes()
    if dtype == "BF16":
        return t.to(torch.bfloat16).view(torch.int16).numpy().astype("<i2").tobytes()
    if dtype == "I64":
        return t.numpy().astype("<i8").tobytes()
    raise ValueError(dtype)


def write_safetensors(path, tensors):
    """tensors: name -> (torch tensor, dtype string). Writes in name order."""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        t, dt = tensors[name]
        b = tensor_bytes(t, dt)
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    return off


def save_outputs(folder, pixels, ids, model):
    with torch.no_grad():
        img, txt, logits = model(pixels, ids)
    np.save(os.path.join(folder, "pixel_values.npy"), pixels.numpy().astype(np.float32))
    np.save(os.path.join(folder, "input_ids.npy"), ids.numpy().astype(np.int64))
    np.save(os.path.join(folder, "image_features.npy"), img.numpy().astype(np.float32))
    np.save(os.path.join(folder, "text_features.npy"), txt.numpy().astype(np.float32))
    np.save(os.path.join(folder, "logits_per_image.npy"), logits.numpy().astype(np.float32))


def hf_gelu_sharded():
    folder = "hf-gelu-sharded"
    os.makedirs(folder, exist_ok=True)
    cfg = {
        "architectures": ["CLIPModel"], "model_type": "clip",
        "projection_dim": 24, "logit_scale_init_value": 2.6592,
        "text_config": {"vocab_size": 300, "hidden_size": 40, "intermediate_size": 72,
                        "num_attention_heads": 5, "num_hidden_layers": 2,
                        "max_position_embeddings": 12, "hidden_act": "gelu",
                        "layer_norm_eps": 1e-6, "bos_token_id": 4, "eos_token_id": 5,
                        "pad_token_id": 0},
        "vision_config": {"hidden_size": 48, "intermediate_size": 80, "num_attention_heads": 3,
                          "num_hidden_layers": 3, "image_size": 24, "patch_size": 6,
                          "num_channels": 3, "hidden_act": "gelu", "layer_norm_eps": 1e-6},
    }
    model = CLIP(cfg, pooling="eos")
    randomize(model)
    with torch.no_grad():
        model.logit_scale.fill_(math.log(20.0))
    half = lambda name: torch.float16 if "embedding" in name else torch.bfloat16
    round_to(model, half)
    hf = openai_to_hf(model.state_dict(), cfg)
    stored = {k: (v, "F16" if "embedding" in k else "BF16") for k, v in hf.items()}
    stored["logit_scale"] = (hf["logit_scale"].reshape(1), "F32")  # some exports store [1]
    stored["text_model.embeddings.position_ids"] = (torch.arange(12).reshape(1, 12), "I64")
    shards = {"model-00001-of-00002.safetensors": {}, "model-00002-of-00002.safetensors": {}}
    for k, v in stored.items():
        shard = "model-00001-of-00002.safetensors" if k.startswith("vision_model.") else "model-00002-of-00002.safetensors"
        shards[shard][k] = v
    total, weight_map = 0, {}
    for shard, ts in shards.items():
        total += write_safetensors(os.path.join(folder, shard), ts)
        weight_map.update({k: shard for k in ts})
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, f, indent=1)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    pixels = torch.randn(3, 3, 24, 24)
    # eos (5) not the largest id; a row without eos pools position 0; a
    # row with two eos pools the first; padding with 0.
    ids = torch.tensor([
        [4, 17, 250, 33, 5, 0, 0, 0, 0, 0],
        [4, 299, 8, 12, 90, 7, 5, 0, 0, 0],
        [4, 9, 10, 11, 12, 13, 14, 15, 16, 17],
        [4, 5, 120, 5, 0, 0, 0, 0, 0, 0],
        [4, 200, 201, 202, 203, 204, 205, 206, 207, 5],
    ])
    save_outputs(folder, pixels, ids, model)


def openai_f16():
    folder = "openai-f16"
    os.makedirs(folder, exist_ok=True)
    cfg = {
        "projection_dim": 16,
        "text_config": {"vocab_size": 100, "hidden_size": 64, "intermediate_size": 128,
                        "num_attention_heads": 1, "num_hidden_layers": 1,
                        "max_position_embeddings": 8, "hidden_act": "quick_gelu",
                        "layer_norm_eps": 1e-5, "eos_token_id": 99},
        "vision_config": {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 1,
                          "num_hidden_layers": 1, "image_size": 16, "patch_size": 4,
                          "num_channels": 3, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5},
    }
    model = CLIP(cfg, pooling="argmax")
    randomize(model)
    round_to(model, lambda name: torch.float16)
    write_safetensors(os.path.join(folder, "model.safetensors"),
                      {k: (v, "F16") for k, v in model.state_dict().items()})
    pixels = torch.randn(4, 3, 16, 16)
    ids = torch.tensor([
        [98, 10, 20, 99, 0, 0, 0, 0],
        [98, 97, 96, 1, 2, 3, 4, 99],
        [98, 99, 0, 0, 0, 0, 0, 0],
    ])
    save_outputs(folder, pixels, ids, model)


if __name__ == "__main__":
    torch.manual_seed(20261127)
    hf_gelu_sharded()
    openai_f16()
