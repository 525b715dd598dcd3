#!/usr/bin/env python3
"""How far a bf16 tensor-core attention backward is from the exact gradients, by emulation.

The CUDA backward for bf16 storage (native/src/cuda/attention_bf16.cu, head size 64) multiplies
bf16 operands: dO, P and dS are rounded to bf16 before their products, as in FlashAttention-2.
This script emulates those roundings in float64 (torch, CPU) for random inputs of the tested
shapes and prints the gradient errors against the exact float64 gradients: the norm-relative
error, and the error of directional derivatives along random directions (what the op parity
harness checks). It backs the gradient tolerance of the CUDA bf16 cases in
native/tests/test_attention.cpp.

    /usr/bin/python3 tools/parity/attn_bwd_bf16_emulation.py [--trials 20]
"""
import argparse
import statistics

import torch


def bf(x):
    return x.to(torch.bfloat16).to(torch.float64)


def trial(T, D, valid, gen):
    q, k, v = (bf(torch.randn(T, D, dtype=torch.float64, generator=gen)) for _ in range(3))
    dO = torch.randn(T, D, dtype=torch.float64, generator=gen)
    keep = torch.zeros(T, dtype=torch.bool)
    keep[:valid] = True
    sc = D ** -0.5
    S = q @ k.T * sc
    S[:, ~keep] = -float("inf")
    P = torch.softmax(S, -1)
    O = P @ v
    dS = P * (dO @ v.T - (dO * O).sum(-1, keepdim=True))
    exact = {"dq": sc * dS @ k, "dk": sc * dS.T @ q, "dv": P.T @ dO}
    # the kernel: O stored as bf16 (from bf16 P), dO rounded, D = rowsum(fp32 dO * bf16 O)
    Ob = bf(bf(P) @ v)
    dOb = bf(dO)
    dSk = bf(P * (dOb @ v.T - (dO * Ob).sum(-1, keepdim=True)))
    got = {"dq": sc * dSk @ k, "dk": sc * dSk.T @ q, "dv": bf(P).T @ dOb}
    out = {}
    for name in exact:
        a, b = got[name], exact[name]
        u = torch.randn(a.shape, dtype=torch.float64, generator=gen)
        out[name] = (float((a - b).norm() / b.norm()), float(abs(((a - b) * u).sum()) / abs((b * u).sum())))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=20)
    a = ap.parse_args()
    gen = torch.Generator().manual_seed(0)
    for T, valid in ((197, 197), (97, 60), (256, 200)):
        res = {}
        for _ in range(a.trials):
            for name, e in trial(T, 64, valid, gen).items():
                res.setdefault(name, []).append(e)
        for name, es in res.items():
            norms = [e[0] for e in es]
            dirs = sorted(e[1] for e in es)
            print(f"T={T} valid keys {valid} {name}: norm-relative error median {statistics.median(norms):.2e}, "
                  f"directional median {statistics.median(dirs):.2e}, 90th percentile {dirs[int(0.9 * len(dirs))]:.2e}")


if __name__ == "__main__":
    main()
