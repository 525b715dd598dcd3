#!/usr/bin/env python3
"""PyTorch baseline for the CARZero image encoder (ViT-B/16, 224x224, 197 tokens, width 768):
eager (bf16 and fp32, attention through F.scaled_dot_product_attention) and torch.compile, on the
same card as our model benchmark (bench/gpu/model-bench.mjs, build/bench_model --device cuda).

    python3 bench/gpu/torch_model_bench.py [--device cuda] [--batch 256] [--dtypes bf16,fp32,tf32]
        [--modes eager,compile] [--compile-dtypes bf16] [--impl auto|timm|own|both] [--reps 20]
        [--warmup 5] [--bert] [--bert-batch N] [--json out.json]

Models (random weights; speed does not depend on them):
  timm  timm's vit_base_patch16_224 (num_classes=0), forward_features -> (B, 197, 768): the same
        graph as CARZero's img_encoder (pre-norm blocks, fused qkv, exact GELU, final LayerNorm)
  own   the same ViT-B/16 written here with nn.Linear/LayerNorm/GELU and SDPA (used when timm is
        missing; also a cross-check of timm's numbers with --impl both)
Timing: warm-up calls, then reps calls each ended by torch.cuda.synchronize(); median and min
reported, images/s at the median. fp32 runs with TF32 off (our fp32 GEMMs use no TF32 either);
tf32 is the fp32 model with torch.backends.cuda.matmul.allow_tf32 (and cudnn's) on: the baseline of
our precision 'tf32'.
--bert adds BERT-base rows (eager, each dtype; model "bert"): 12 post-norm layers, width 768, 12
heads, 3072 exact-GELU, SDPA with the key-padding mask, on --bert-batch rows (default --batch) of
97 positions holding 8..47 real tokens as bench/gpu/model-bench.mjs's; texts/s. ViT rows carry
model "vit".
torch.compile: default mode; its first call (compilation) is timed separately as compile_s.
Degrades with a note instead of failing: no CUDA (runs on the CPU), torch < 2.0 (no SDPA: manual
attention; no torch.compile), no timm (own model). The JSON is rewritten after every measurement,
so a run cut short by a timeout keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

sys.dont_write_bytecode = True

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HAS_SDPA = hasattr(F, "scaled_dot_product_attention")
HAS_COMPILE = hasattr(torch, "compile")


class Attention(nn.Module):
    def __init__(self, dim=768, heads=12):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).reshape(B, T, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        if HAS_SDPA:
            o = F.scaled_dot_product_attention(q, k, v)
        else:  # torch < 2.0
            a = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // self.heads))
            o = a.softmax(-1) @ v
        return self.proj(o.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    def __init__(self, dim=768, heads=12, mlp=3072):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, mlp)
        self.fc2 = nn.Linear(mlp, dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ViT(nn.Module):
    """ViT-B/16 as in timm / CARZero's img_encoder.model: returns the final-LayerNorm tokens."""

    def __init__(self, dim=768, depth=12, heads=12, mlp=3072, patch=16, image=224):
        super().__init__()
        n = (image // patch) ** 2
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + n, dim) * 0.02)
        self.blocks = nn.ModuleList([Block(dim, heads, mlp) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + self.pos_embed
        for b in self.blocks:
            x = b(x)
        return self.norm(x)


class TimmFeatures(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m.forward_features(x)


def build(impl: str, notes: list):
    if impl in ("timm", "auto"):
        try:
            import timm

            m = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0)
            fused = getattr(m.blocks[0].attn, "fused_attn", None)
            notes.append(f"timm {timm.__version__} vit_base_patch16_224 forward_features; attn.fused_attn={fused}")
            return "timm", TimmFeatures(m), fused
        except Exception as e:  # noqa: BLE001
            if impl == "timm":
                raise
            notes.append(f"timm unavailable ({type(e).__name__}: {e}); using the ViT-B/16 defined here")
    return "own", ViT(), HAS_SDPA


class BertLayer(nn.Module):
    """One BERT layer (post-norm): the shapes and ops of BioClinicalBERT's encoder."""

    def __init__(self, dim=768, heads=12, inter=3072):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.ln1 = nn.LayerNorm(dim, eps=1e-12)
        self.fc1 = nn.Linear(dim, inter)
        self.fc2 = nn.Linear(inter, dim)
        self.ln2 = nn.LayerNorm(dim, eps=1e-12)

    def forward(self, x, keep):  # keep: (B, 1, 1, L) bool, True = attend
        B, L, C = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        if HAS_SDPA:
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        else:
            s = (q @ k.transpose(-1, -2)) / math.sqrt(C // self.heads)
            a = s.masked_fill(~keep, float("-inf")).softmax(-1) @ v
        x = self.ln1(x + self.out(a.transpose(1, 2).reshape(B, L, C)))
        return self.ln2(x + self.fc2(F.gelu(self.fc1(x))))


class Bert(nn.Module):
    def __init__(self, vocab=28996, dim=768, depth=12, positions=512):
        super().__init__()
        self.word = nn.Embedding(vocab, dim)
        self.pos = nn.Embedding(positions, dim)
        self.token_type = nn.Embedding(2, dim)
        self.ln = nn.LayerNorm(dim, eps=1e-12)
        self.layers = nn.ModuleList([BertLayer(dim) for _ in range(depth)])

    def forward(self, ids, mask):
        L = ids.shape[1]
        pos = torch.arange(L, device=ids.device)
        x = self.ln(self.word(ids) + self.pos(pos)[None] + self.token_type.weight[0])
        keep = mask.bool()[:, None, None, :]
        hidden = []
        for layer in self.layers:
            x = layer(x, keep)
            hidden.append(x)
        return torch.stack(hidden[-4:]).sum(0)  # CARZero reads the last four layers


def bert_rows(n: int, L: int = 97):
    """ids and mask like bench/gpu/model-bench.mjs's synthetic texts."""
    ids = torch.zeros(n, L, dtype=torch.long)
    mask = torch.zeros(n, L, dtype=torch.long)
    for q in range(n):
        t = 8 + (q * 3) % 40
        for i in range(t):
            ids[q, i] = 101 if i == 0 else 102 if i == t - 1 else 1000 + (q * 131 + i * 17) % 27000
        mask[q, :t] = 1
    return ids, mask


def timing_fields(ts, y, count: int, per_s: str):
    """median seconds and the row fields of one timed call: ms median / min, count per second under
    the key per_s, whether the output is finite."""
    med = statistics.median(ts)
    return med, {"ms_median": round(med * 1e3, 4), "ms_min": round(min(ts) * 1e3, 4),
                 per_s: round(count / med, 2), "finite": bool(torch.isfinite(y.float()).all())}


def record_error(row: dict, label: str, e: Exception):
    row["error"] = f"{type(e).__name__}: {e}"[:2000]
    print(f"[{label}] ERROR {row['error'][:300]}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--dtypes", default="bf16,fp32")
    ap.add_argument("--modes", default="eager,compile")
    ap.add_argument("--compile-dtypes", default="",
                    help="dtypes that also run torch.compile (default: all of --dtypes)")
    ap.add_argument("--impl", default="auto", choices=["auto", "timm", "own", "both"])
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (CPU runs)")
    ap.add_argument("--bert", action="store_true", help="also time BERT-base (L = 97), eager")
    ap.add_argument("--bert-batch", type=int, default=0, help="texts per BERT call (default: --batch)")
    ap.add_argument("--json")
    a = ap.parse_args()
    t_start = time.time()
    notes = []
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    dev = a.device
    if dev.startswith("cuda") and not torch.cuda.is_available():
        notes.append("CUDA not available to torch: running on the CPU (rehearsal numbers, not a baseline)")
        dev = "cpu"
    gpu = torch.cuda.get_device_name(0) if dev.startswith("cuda") else None
    if dev.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    if not HAS_SDPA:
        notes.append(f"torch {torch.__version__} has no F.scaled_dot_product_attention: "
                     "manual attention (not the SDPA baseline)")
    modes = [m for m in a.modes.split(",") if m]
    if "compile" in modes and not HAS_COMPILE:
        notes.append(f"torch {torch.__version__} has no torch.compile: compile rows skipped")
        modes = [m for m in modes if m != "compile"]
    dtypes = {"bf16": torch.bfloat16, "fp32": torch.float32, "fp16": torch.float16, "tf32": torch.float32}

    def set_tf32(on: bool):
        if dev.startswith("cuda"):
            torch.backends.cuda.matmul.allow_tf32 = on
            torch.backends.cudnn.allow_tf32 = on
    report = {
        "tool": "bench/gpu/torch_model_bench.py", "torch": torch.__version__, "python": platform.python_version(),
        "device": dev, "gpu": gpu, "cuda": torch.version.cuda, "batch": a.batch, "reps": a.reps, "warmup": a.warmup,
        "sdpa": HAS_SDPA, "tf32": False, "threads": torch.get_num_threads(), "results": [], "notes": notes,
    }

    def flush():
        report["seconds"] = round(time.time() - t_start, 1)
        if a.json:
            tmp = a.json + ".tmp"
            with open(tmp, "w") as f:
                json.dump(report, f, indent=1)
            os.replace(tmp, a.json)

    def sync():
        if dev.startswith("cuda"):
            torch.cuda.synchronize()

    def timed(fn):
        """warm-up calls, then reps calls each ended by sync(): (times in s, last output)."""
        for _ in range(a.warmup):
            fn()
        sync()
        ts, y = [], None
        for _ in range(a.reps):
            t0 = time.perf_counter()
            y = fn()
            sync()
            ts.append(time.perf_counter() - t0)
        return ts, y

    impls = ["timm", "own"] if a.impl == "both" else [a.impl]
    i_impl = 0
    while i_impl < len(impls):
        impl_req = impls[i_impl]
        i_impl += 1
        torch.manual_seed(0)
        impl, base, fused = build(impl_req, notes)
        base = base.eval()
        for dn in [d for d in a.dtypes.split(",") if d]:
            dt = dtypes[dn]
            set_tf32(dn == "tf32")
            model = base.to(device=dev, dtype=dt)
            x = torch.randn(a.batch, 3, 224, 224, device=dev, dtype=dt)
            for mode in modes:
                if mode == "compile" and a.compile_dtypes and dn not in a.compile_dtypes.split(","):
                    continue
                row = {"model": "vit", "impl": impl, "mode": mode, "dtype": dn, "batch": a.batch, "sdpa": bool(fused)}
                try:
                    with torch.inference_mode():
                        if mode == "compile":
                            torch._dynamo.reset()
                            fn = torch.compile(model)
                            t0 = time.perf_counter()
                            fn(x)
                            sync()
                            row["compile_s"] = round(time.perf_counter() - t0, 2)
                        else:
                            fn = model
                        ts, y = timed(lambda: fn(x))
                    row["out_shape"] = list(y.shape)
                    if tuple(y.shape) != (a.batch, 197, 768):
                        notes.append(f"{impl}: output shape {tuple(y.shape)}, expected ({a.batch}, 197, 768)")
                    med, fields = timing_fields(ts, y, a.batch, "images_per_s")
                    row.update(fields)
                    print(f"[torch {impl} {mode} {dn}] B={a.batch}: median {med * 1e3:.2f} ms, "
                          f"min {min(ts) * 1e3:.2f} ms, "
                          f"{a.batch / med:.1f} images/s"
                          + (f" (compile {row['compile_s']} s)" if "compile_s" in row else ""),
                          flush=True)
                except Exception as e:  # noqa: BLE001
                    record_error(row, f"torch {impl} {mode} {dn}", e)
                report["results"].append(row)
                flush()
            del x
            if dev.startswith("cuda"):
                torch.cuda.empty_cache()
        if impl_req == "auto" and impl == "timm" and any(
                r.get("error") for r in report["results"] if r["impl"] == "timm"):
            notes.append("timm rows failed: measuring the ViT-B/16 defined here as well")
            impls.append("own")
    set_tf32(False)
    if a.bert:
        nb = a.bert_batch or a.batch
        torch.manual_seed(0)
        bert = Bert().eval()
        ids, mask = bert_rows(nb)
        ids, mask = ids.to(dev), mask.to(dev)
        for dn in [d for d in a.dtypes.split(",") if d]:
            set_tf32(dn == "tf32")
            row = {"model": "bert", "impl": "own", "mode": "eager", "dtype": dn, "batch": nb, "L": 97,
                   "sdpa": HAS_SDPA}
            try:
                m = bert.to(device=dev, dtype=dtypes[dn])
                with torch.inference_mode():
                    ts, y = timed(lambda: m(ids, mask))
                med, fields = timing_fields(ts, y, nb, "texts_per_s")
                row.update(fields)
                print(f"[torch bert eager {dn}] B={nb} L=97: median {med * 1e3:.2f} ms, {nb / med:.1f} texts/s",
                      flush=True)
            except Exception as e:  # noqa: BLE001
                record_error(row, f"torch bert eager {dn}", e)
            report["results"].append(row)
            flush()
        set_tf32(False)
    flush()
    for n in notes:
        print(f"note: {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
