#!/usr/bin/env python3
"""PyTorch CPU peer for `npm run bench -- attention`: the same shapes as build/bench_attention,
timed as plain eager attention, softmax(Q K^T * scale + mask) V, with q/k/v taken as views of the
same packed buffers our kernel reads (qkv (B, T, 3C) for self-attention, kv (B, S, 2C) and one
shared (Tq, C) query set for the head's cross-attention). Backward = torch.autograd.grad of the
output against q, k, v with a fixed upstream gradient (the probabilities are kept by autograd,
not recomputed). Warm-up, then forward and backward alternating; medians.

usage: python3 bench/peers/torch_attention.py [--reps N] [--warmup N] [--threads N] [--json F]
"""
import argparse
import json
import math
import statistics
import sys
import time

try:
    import torch
except Exception as e:  # noqa: BLE001
    print(f"torch_attention: PyTorch not importable ({e})", file=sys.stderr)
    sys.exit(3)

SHAPES = [
    # name, B, NH, Tq, Tk, HS, self, mask
    ("vit", 8, 12, 197, 197, 64, True, False),
    ("bert", 14, 12, 97, 97, 64, True, True),
    ("i2t", 8, 4, 14, 197, 192, False, False),
    ("t2i", 14, 4, 8, 98, 192, False, False),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shapes", default="vit,bert,i2t,t2i")
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    want = set(a.shapes.split(","))
    rows = []
    for name, B, NH, Tq, Tk, HS, self_, masked in SHAPES:
        if name not in want:
            continue
        C = NH * HS
        scale = 1.0 / math.sqrt(HS)
        if self_:
            qkv = (torch.rand(B, Tq, 3 * C) * 2 - 1).requires_grad_(True)
            leaves = [qkv]

            def qkv_views():
                t = qkv.view(B, Tq, 3, NH, HS).permute(2, 0, 3, 1, 4)
                return t[0], t[1], t[2]
        else:
            qs = (torch.rand(Tq, C) * 2 - 1).requires_grad_(True)
            kv = (torch.rand(B, Tk, 2 * C) * 2 - 1).requires_grad_(True)
            leaves = [qs, kv]

            def qkv_views():
                q = qs.view(1, Tq, NH, HS).permute(0, 2, 1, 3).expand(B, NH, Tq, HS)
                t = kv.view(B, Tk, 2, NH, HS).permute(2, 0, 3, 1, 4)
                return q, t[0], t[1]
        bias = None
        if masked:
            m = torch.zeros(B, Tk, dtype=torch.bool)
            for b in range(B):
                m[b, : min(Tk, 9 + (b * 7) % 30)] = True
            bias = torch.zeros(B, 1, 1, Tk).masked_fill(~m.view(B, 1, 1, Tk), float("-inf"))
        dout = torch.rand(B, NH, Tq, HS) * 2 - 1

        def fwd():
            q, k, v = qkv_views()
            s = torch.matmul(q, k.transpose(-1, -2)) * scale
            if bias is not None:
                s = s + bias
            p = torch.softmax(s, dim=-1)
            o = torch.matmul(p, v)  # (B, NH, Tq, HS)
            return o.transpose(1, 2).reshape(B, Tq, C)

        def bwd(o):
            torch.autograd.grad(o, leaves, grad_outputs=dout.transpose(1, 2).reshape(B, Tq, C))

        for _ in range(a.warmup):
            bwd(fwd())
        tf, tb = [], []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            with torch.no_grad():
                fwd()
            tf.append((time.perf_counter() - t0) * 1e3)
            o = fwd()  # graph for the backward (not timed)
            t0 = time.perf_counter()
            bwd(o)
            tb.append((time.perf_counter() - t0) * 1e3)
        f1 = 4.0 * B * NH * Tq * Tk * HS
        for pas, t, fl in (("forward", tf, f1), ("backward", tb, 2.5 * f1)):
            ms = statistics.median(t)
            rows.append({"shape": name, "pass": pas, "B": B, "NH": NH, "Tq": Tq, "Tk": Tk, "HS": HS,
                         "ms": ms, "ms_min": min(t), "gflops": fl / (ms * 1e6)})
            print(f"torch {name:5s} {pas:8s} {ms:9.3f} ms {fl / (ms * 1e6):8.1f} GFLOP/s")
    rep = {"torch": torch.__version__, "threads": torch.get_num_threads(), "reps": a.reps,
           "warmup": a.warmup, "results": rows}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rep, f, indent=2)


if __name__ == "__main__":
    main()
