#!/usr/bin/python3
"""FULL-SIZE CARZero fixtures (random weights, real shapes) for benchmarks and end-to-end checks.
NOT committed (about 1.8 GB):

    /usr/bin/python3 tools/reference/full_size.py --out /tmp/carzero-full [--no-onnx] [--no-timing]

Writes to --out the same layout as test/fixtures/tiny (see its README) with these differences:
carzero-full.ckpt (no optimizer states, no halves copy), bert-full/ and bert-full-st/ (vocab of
28996 entries laid out like bert-base-cased: [PAD]=0 [UNK]=100 [CLS]=101 [SEP]=102 [MASK]=103),
the first 6 prompts, 4 images in the model batch, no DICOM / evil files; plus
  vit.onnx           ViT image encoder: input "pixels" (B,3,224,224) f32 with dynamic B;
                     outputs "global" (B,768) and "local" (B,196,768)
  vit-onnx.json      ONNX export details and the file names of the expected outputs
  timing.json        fp32 PyTorch CPU timings of the reference forward (also printed)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import torch

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import carzero_ref as R  # noqa: E402
import fixture_lib as L  # noqa: E402
import make_fixtures as MF  # noqa: E402


def full_config(vocab_size: int) -> R.CARZeroConfig:
    c = R.CARZeroConfig()
    c.text.vocab_size = vocab_size
    return c


class ViTForExport(torch.nn.Module):
    def __init__(self, vit):
        super().__init__()
        self.vit = vit

    def forward(self, pixels):
        g, l = self.vit(pixels)
        return g, l


def export_onnx(model: R.CARZeroRef, out: str, pixels: torch.Tensor, log=print) -> dict:
    m = ViTForExport(model.img_encoder.model).eval()
    path = os.path.join(out, "vit.onnx")
    opset = 17
    t = time.time()
    try:
        torch.onnx.export(m, (pixels[:1].float(),), path, input_names=["pixels"], output_names=["global", "local"],
                          dynamic_axes={"pixels": {0: "B"}, "global": {0: "B"}, "local": {0: "B"}},
                          opset_version=opset, do_constant_folding=True)
    except Exception as e:  # older exporters
        log(f"opset 17 export failed ({e}); trying 14")
        opset = 14
        torch.onnx.export(m, (pixels[:1].float(),), path, input_names=["pixels"], output_names=["global", "local"],
                          dynamic_axes={"pixels": {0: "B"}, "global": {0: "B"}, "local": {0: "B"}},
                          opset_version=opset, do_constant_folding=True)
    with torch.no_grad():
        g32, l32 = m(pixels.float())
    idx = {}
    L.write_bin(out, "onnx/pixels.f32", pixels.float().numpy(), idx, "pixels")
    L.write_bin(out, "onnx/global_fp32.f32", g32.numpy(), idx, "global")
    L.write_bin(out, "onnx/local_fp32.f32", l32.numpy(), idx, "local")
    info = {"file": "vit.onnx", "opset": opset, "torch": torch.__version__, "bytes": os.path.getsize(path),
            "inputs": {"pixels": ["B", 3, 224, 224]}, "outputs": {"global": ["B", 768], "local": ["B", 196, 768]},
            "export_seconds": round(time.time() - t, 1),
            "expected": idx,
            "note": ("expected = the PyTorch float32 forward on onnx/pixels.f32 (the 4 model-batch images, "
                     "3 equal channels); outputs/img_global.f32 etc. are the same from a float64 forward")}
    L.dump_json(os.path.join(out, "vit-onnx.json"), info)
    return info


def bench(model: R.CARZeroRef, pixels: torch.Tensor, rows, reps: int = 3, log=print) -> dict:
    m = model.float().eval()
    res = {"device": "cpu", "dtype": "float32", "torch": torch.__version__, "threads": torch.get_num_threads(),
           "cpu": platform.processor() or platform.machine(), "reps": reps, "seconds": {}}

    def timeit(name, fn):
        with torch.no_grad():
            fn()  # warm-up
            ts = []
            for _ in range(reps):
                t = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t)
        res["seconds"][name] = {"min": round(min(ts), 4), "median": round(float(np.median(ts)), 4)}
        log(f"  {name}: {min(ts):.3f}s")

    p1 = pixels[:1].float()
    p8 = pixels.float().repeat(2, 1, 1, 1)[:8]
    timeit("vit_b1", lambda: m.img_encoder(p1))
    timeit("vit_b8", lambda: m.img_encoder(p8))
    ids = torch.tensor([r["ids"] for r in rows])
    mask = torch.tensor([r["mask"] for r in rows])
    toks = [r["tokens"] for r in rows]
    res["text_batch"] = len(rows)
    timeit(f"bert_q{len(rows)}_with_aggregation", lambda: m.text_encoder(ids, mask, toks))
    timeit(f"bert_q{len(rows)}_encoder_only", lambda: m.text_encoder.model(ids, mask))
    with torch.no_grad():
        g, l = m.img_encoder(p8)
        w, s = m.text_encoder(ids, mask, toks)
    res["head_shape"] = {"B": 8, "Q": len(rows)}
    timeit(f"head_b8_q{len(rows)}_i2t_t2i", lambda: m.score(g, l, s, w))
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--no-onnx", action="store_true")
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    t0 = time.time()
    log = lambda s: print(f"[{time.time() - t0:6.1f}s] {s}", flush=True)  # noqa: E731
    vocab = L.full_vocab(28996)
    model, cfg, rows, pixels, outs, _ = MF.generate(a.out, full_config, vocab, seed=a.seed, tiny=False, log=log)
    # light self-check: the checkpoint reloads into the reference with strict key matching
    ck = torch.load(os.path.join(a.out, "carzero-full.ckpt"), map_location="cpu")  # our own benign file
    sd = R.strip_lightning_prefix(ck["state_dict"])
    R.CARZeroRef(cfg).load_state_dict(sd, strict=True)
    ref = model.state_dict()
    assert all(torch.equal(sd[k], ref[k]) for k in ref)
    del ck, sd
    log("checkpoint reload ok")
    summary = {"out": a.out}
    if not a.no_onnx:
        summary["onnx"] = export_onnx(model, a.out, pixels, log)
        log(f"vit.onnx written (opset {summary['onnx']['opset']})")
    if not a.no_timing:
        log("timing (fp32, CPU):")
        tm = bench(model, pixels, rows, a.reps, log)
        L.dump_json(os.path.join(a.out, "timing.json"), tm)
        summary["timing"] = tm
    total = 0
    for dp, _, fs in os.walk(a.out):
        total += sum(os.path.getsize(os.path.join(dp, f)) for f in fs)
    summary["bytes"] = total
    summary["seconds"] = round(time.time() - t0, 1)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
