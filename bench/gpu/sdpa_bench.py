#!/usr/bin/env python3
"""PyTorch scaled_dot_product_attention (bf16) on the shapes of native/bench/bench_cuda.cpp, on
the same card, forward and backward TFLOP/s. Writes JSON (--json PATH)."""
import argparse
import json
import math
import sys

import torch
import torch.nn.functional as F

SHAPES = [
    # name, B, NH, Tq, Tk, HS, mask, kshared
    ("vit B=256 T=197 12x64", 256, 12, 197, 197, 64, False, False),
    ("bert B=256 T=97 mask 12x64", 256, 12, 97, 97, 64, True, False),
    ("head B=1024 Tq=1 Tk=197 shared 4x192", 1024, 4, 1, 197, 192, False, True),
    ("head B=256 Tq=64 Tk=197 4x192", 256, 4, 64, 197, 192, False, False),
]


def timed(fn, warmup=3, iters=10):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(iters):
        fn()
    b.record()
    torch.cuda.synchronize()
    return a.elapsed_time(b) / iters


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default="bench/out/sdpa.json")
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--tf32", action="store_true",
                    help="with --dtype f32: allow TF32 (torch.backends.cuda.matmul.allow_tf32), the baseline "
                         "of carzero's precision tf32; rows are labelled dtype tf32")
    args = ap.parse_args()
    if args.tf32 and args.dtype != "f32":
        ap.error("--tf32 needs --dtype f32")
    label = "tf32" if args.tf32 else args.dtype
    if not torch.cuda.is_available():
        print("sdpa_bench: no CUDA device visible to PyTorch")
        json.dump({"available": False}, open(args.json, "w"))
        return 0
    dt = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}[args.dtype]
    dev = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    rows = []
    for name, B, NH, Tq, Tk, HS, use_mask, kshared in SHAPES:
        # (B, T, NH, HS) storage viewed as (B, NH, T, HS): the layout carzero uses.
        q = torch.randn(B, Tq, NH, HS, device=dev, dtype=dt).transpose(1, 2).requires_grad_()
        Bk = 1 if kshared else B
        k = torch.randn(Bk, Tk, NH, HS, device=dev, dtype=dt).transpose(1, 2)
        v = torch.randn(Bk, Tk, NH, HS, device=dev, dtype=dt).transpose(1, 2)
        if kshared:
            k, v = k.expand(B, -1, -1, -1), v.expand(B, -1, -1, -1)
        k, v = k.detach().requires_grad_(), v.detach().requires_grad_()
        mask = None
        if use_mask:
            lens = torch.tensor([Tk // 2 + (b * 37) % (Tk - Tk // 2 + 1) for b in range(B)], device=dev)
            keep = torch.arange(Tk, device=dev)[None, :] < lens[:, None]
            mask = keep[:, None, None, :]  # bool: True = attend
        flop = 4.0 * B * NH * Tq * Tk * HS
        try:
            fwd = lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            with torch.no_grad():
                ms = timed(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
            rows.append({"shape": name, "impl": "torch sdpa fwd", "dtype": label, "ms": ms,
                         "tflops": flop / ms / 1e9})
            out = fwd()
            g = torch.randn_like(out)

            def bwd():
                o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
                torch.autograd.grad(o, (q, k, v), g)

            ms_fb = timed(bwd)
            ms_b = max(ms_fb - ms, 1e-6)
            rows.append({"shape": name, "impl": "torch sdpa bwd", "dtype": label, "ms": ms_b,
                         "tflops": 2.5 * flop / ms_b / 1e9})
        except Exception as e:  # a shape a backend refuses: record it, keep going
            rows.append({"shape": name, "impl": "torch sdpa", "dtype": label, "error": str(e)})
    for r in rows:
        print("%-40s %-16s %-5s %10s %9s" % (r["shape"], r["impl"], r["dtype"],
                                            "%.4f" % r.get("ms", float("nan")),
                                            "%.1f" % r.get("tflops", float("nan"))))
    report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "results": rows}
    with open(args.json, "w") as f:
        json.dump(report, f, indent=1)
    print("wrote", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
