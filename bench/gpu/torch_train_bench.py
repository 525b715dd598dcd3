#!/usr/bin/env python3
"""Training-step throughput of the PyTorch reference (tools/reference/carzero_ref.py, the original's
semantics) for the issue's GPU comparison: the same step as bench/gpu/train-bench.mjs, i.e.
forward of the N image-report pairs, loss ce(I) + ce(T) (make_train_fixtures.forward), backward,
clip at global norm 0.25, Adam (lr 5e-5, betas (0.5, 0.999), weight decay 1e-6), full-size
configuration, random weights, dropout on (train mode).

    python3 bench/gpu/torch_train_bench.py --device cuda --batches 64,128,256 --amp fp16,bf16,none \
        --json out.json
    /usr/bin/python3 bench/gpu/torch_train_bench.py --device cpu --batches 2 --reps 1 --warmup 0  # rehearsal

--sdpa: the same model with its attention on torch's fused kernels (F.scaled_dot_product_attention
in the ViT and BERT self-attention, nn.MultiheadAttention without averaged weights in the head),
as a modern PyTorch port would run it; without it the attention is explicit (matmul, softmax,
matmul), as in the timm and transformers versions the original was written against.

amp: fp16 = torch.autocast(float16) + GradScaler (the original trained with Lightning precision 16),
bf16 = torch.autocast(bfloat16), none = fp32. Reports samples/s (median step) and
torch.cuda.max_memory_allocated / max_memory_reserved per configuration; an out-of-memory error is
recorded and the next configuration runs.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "reference"))

import carzero_ref as R  # noqa: E402
import fixture_lib as L  # noqa: E402
from make_train_fixtures import forward  # noqa: E402

SENTENCES = [
    "there is a small left pleural effusion", "mild cardiomegaly is noted", "no pneumothorax is seen",
    "patchy opacity in the right lower lobe concerning for pneumonia", "the lungs are clear",
    "a 1 cm nodule projects over the left upper lobe", "bibasilar atelectasis", "healing fracture of a left rib",
]


def use_sdpa() -> None:
    """Swaps the reference's explicit attention for torch's fused kernels (same math)."""
    import torch.nn.functional as F

    def vit_forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], scale=self.scale)
        return self.proj(o.transpose(1, 2).reshape(B, N, C))

    def bert_forward(self, x, ext_mask):
        B, L, C = x.shape

        def split(t):
            return t.view(B, L, self.heads, self.head_dim).permute(0, 2, 1, 3)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=ext_mask.to(q.dtype))
        return o.permute(0, 2, 1, 3).reshape(B, L, C)

    def head_forward(self, tgt, memory):
        t2 = self.norm2(tgt)
        t2, w = self.multihead_attn(query=t2, key=memory, value=memory, need_weights=False)
        tgt = tgt + self.dropout2(t2)
        t2 = self.norm3(tgt)
        t2 = self.linear2(self.dropout(F.relu(self.linear1(t2))))
        tgt = tgt + self.dropout3(t2)
        return tgt, w

    R.ViTAttention.forward = vit_forward
    R.BertSelfAttention.forward = bert_forward
    R.DecoderLayerWoSelfAttn.forward = head_forward


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batches", default="64,128,256")
    ap.add_argument("--amp", default="fp16,bf16,none")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--json", default="")
    ap.add_argument("--sdpa", action="store_true", help="fused attention (see the module doc)")
    a = ap.parse_args()
    if a.sdpa:
        use_sdpa()
    dev = torch.device(a.device)
    torch.manual_seed(0)
    vocab_list = L.full_vocab(28996)
    cfg = R.CARZeroConfig()
    cfg.text.vocab_size = len(vocab_list)
    tok = R.BertWordPieceTokenizer(__import__("collections").OrderedDict((w, i) for i, w in enumerate(vocab_list)))
    report = {"tool": "bench/gpu/torch_train_bench.py", "torch": torch.__version__, "device": str(dev), "sdpa": a.sdpa,
              "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None, "results": []}

    def flush():
        if a.json:
            with open(a.json, "w") as f:
                json.dump(report, f, indent=1)

    for amp in a.amp.split(","):
        for n in [int(b) for b in a.batches.split(",")]:
            model = None
            try:
                model = R.CARZeroRef(cfg).to(dev).train()
                params = [p for p in model.parameters() if p.requires_grad]
                opt = torch.optim.Adam(params, lr=5e-5, betas=(0.5, 0.999), eps=1e-8, weight_decay=1e-6)
                scaler = torch.cuda.amp.GradScaler(enabled=(amp == "fp16" and dev.type == "cuda"))
                enc = [tok.encode(SENTENCES[i % len(SENTENCES)]) for i in range(n)]
                ids = torch.tensor([e["ids"] for e in enc], device=dev)
                mask = torch.tensor([e["mask"] for e in enc], device=dev)
                toks = [e["tokens"] for e in enc]
                pixels = torch.randn(n, 3, 224, 224, device=dev)
                dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(amp)

                def step():
                    opt.zero_grad(set_to_none=True)
                    with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
                        loss = forward(model, pixels, ids, mask, toks)["loss"]
                    scaler.scale(loss).backward()
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(params, 0.25)
                    scaler.step(opt)
                    scaler.update()
                    return float(loss)

                if dev.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(dev)
                for _ in range(a.warmup):
                    step()
                times = []
                loss = 0.0
                for _ in range(a.reps):
                    if dev.type == "cuda":
                        torch.cuda.synchronize(dev)
                    t0 = time.perf_counter()
                    loss = step()  # float(loss) synchronises
                    times.append(time.perf_counter() - t0)
                times.sort()
                s = times[len(times) // 2]
                r = {"amp": amp, "batch": n, "ms_median": s * 1e3, "ms_min": times[0] * 1e3, "samples_per_s": n / s,
                     "loss": loss}
                if dev.type == "cuda":
                    r["max_memory_allocated_gib"] = torch.cuda.max_memory_allocated(dev) / 2**30
                    r["max_memory_reserved_gib"] = torch.cuda.max_memory_reserved(dev) / 2**30
                report["results"].append(r)
                print(f"[torch {amp}] train step B={n}: median {s * 1e3:.1f} ms ({n / s:.1f} samples/s)"
                      + (f", peak {r['max_memory_allocated_gib']:.1f} GiB" if dev.type == "cuda" else ""), flush=True)
            except Exception as e:  # noqa: BLE001 - out of memory at large batches: record, go on
                report["results"].append({"amp": amp, "batch": n, "error": f"{type(e).__name__}: {str(e)[:300]}"})
                print(f"[torch {amp}] train step B={n}: {type(e).__name__}: {str(e)[:200]}", flush=True)
            finally:
                del model
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
            flush()
    flush()


if __name__ == "__main__":
    main()
