#!/usr/bin/python3
"""The ViT's bf16 rounding points emulated in float64: PyTorch CUDA autocast's against ours.

    /usr/bin/python3 tools/reference/vit_rounding_emulation.py [FIXTURE_ROOT=test/fixtures/tiny]

Runs the reference ViT (carzero_ref.py) of a fixture root (tiny, or the full-size reference of
tools/reference/full_size.py) in float64 on the root's model-batch images, rounding to bf16 (and
back) exactly where each path rounds, and prints each path's img_global / img_local error against
the root's float64 outputs (relative Frobenius and max relative; docs/PRECISION.md):

  autocast_gpu   CUDA autocast on the reference module: conv, every Linear (weights, bias, output)
                 and both attention matmuls in bf16 (the scores rounded too), LayerNorm and softmax
                 fp32, GELU on the bf16 value, the residual stream fp32
  ours_dense     our CUDA bf16 ViT with CARZERO_GEMM_BF16_C=dense: LayerNorm outputs, qkv, the
                 attention's probabilities and output, and GELU(fc1) rounded once; proj and fc2
                 into the fp32 residual stream; fp32 biases
  ours_direct32  the default: as ours_dense, but fc1's output is rounded before GELU too
                 (cuBLASLt's bf16 D), biases fp32
  ours_direct16  as ours_direct32 with the qkv and fc1 biases rounded to bf16 (as autocast does)

An emulation, not the GPU: the accumulation order of the real kernels is not modelled.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import autocast_bf16 as A  # noqa: E402

MODES = ("autocast_gpu", "ours_dense", "ours_direct32", "ours_direct16")


def rb(t: torch.Tensor) -> torch.Tensor:
    """Round to bf16 and back (float64)."""
    return t.to(torch.bfloat16).double()


def linear(x, lin, round_bias: bool):
    return x @ rb(lin.weight).T + (rb(lin.bias) if round_bias else lin.bias)


def vit_forward(vit, px, mode: str):
    ac = mode == "autocast_gpu"
    with torch.no_grad():
        pe = vit.patch_embed.proj
        p = rb(F.conv2d(rb(px), rb(pe.weight), rb(pe.bias), stride=pe.stride)) if ac else pe(px)
        x = p.flatten(2).transpose(1, 2) + vit.pos_embed[:, 1:, :]
        cls = (vit.cls_token + vit.pos_embed[:, :1, :]).expand(x.shape[0], -1, -1)
        x = torch.cat((cls, x), 1)
        for blk in vit.blocks:
            at = blk.attn
            B, N, C = x.shape
            qkv = rb(linear(rb(blk.norm1(x)), at.qkv, ac or mode == "ours_direct16"))
            q, k, v = qkv.reshape(B, N, 3, at.heads, C // at.heads).permute(2, 0, 3, 1, 4)
            s = q @ k.transpose(-2, -1)
            s = rb(rb(s) * at.scale) if ac else s * at.scale
            o = rb(rb(s.softmax(-1)) @ v).transpose(1, 2).reshape(B, N, C)
            x = x + (rb(linear(o, at.proj, True)) if ac else linear(o, at.proj, False))
            pre = linear(rb(blk.norm2(x)), blk.mlp.fc1, ac or mode == "ours_direct16")
            h = rb(F.gelu(pre)) if mode == "ours_dense" else rb(F.gelu(rb(pre)))
            x = x + (rb(linear(h, blk.mlp.fc2, True)) if ac else linear(h, blk.mlp.fc2, False))
        x = vit.norm(x)
    return x[:, 0].numpy(), x[:, 1:].numpy()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    fx = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "..", "test", "fixtures",
                                                                             "tiny"))
    idx = json.load(open(os.path.join(fx, "outputs", "index.json")))
    px = A.model_batch_pixels(fx, idx).double()
    vit = A.load_model(fx).double().img_encoder.model
    ref = {}
    for k in ("img_global", "img_local"):
        t = idx["tensors"][k]
        ref[k] = np.fromfile(os.path.join(fx, t["file"]), dtype=np.float32).astype(np.float64).reshape(t["shape"])
    out = {}
    for mode in MODES:
        g, loc = vit_forward(vit, px, mode)
        out[mode] = {}
        for name, got in (("img_global", g), ("img_local", loc)):
            r = ref[name]
            out[mode][name] = {"rel_fro": float(np.linalg.norm(got - r) / np.linalg.norm(r)),
                               "max_rel": float(np.abs(got - r).max() / np.abs(r).max())}
        e = out[mode]
        print(f"{mode:14s} rel_fro global {e['img_global']['rel_fro']:.3e} local {e['img_local']['rel_fro']:.3e}"
              f" | max_rel global {e['img_global']['max_rel']:.3e} local {e['img_local']['max_rel']:.3e}",
              flush=True)
    print(json.dumps({"fixtures": fx, "errors": out}))


if __name__ == "__main__":
    main()
