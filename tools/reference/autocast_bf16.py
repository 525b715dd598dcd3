#!/usr/bin/python3
"""PyTorch's own bf16 autocast on a fixture model: the fidelity bar of the bf16 path (issue 15).

    /usr/bin/python3 tools/reference/autocast_bf16.py [--fixtures DIR] [--device cpu|cuda] [--out FILE]
                                                      [--weights-only]

DIR is a fixture root in the layout of test/fixtures/tiny (default) or of the full-size reference
(tools/reference/full_size.py, tools/parity/gen_reference.py): its config.json gives the model's
shapes and its checkpoint, outputs/index.json the model-batch images and the prompt rows. The
reference model (carzero_ref.py) runs with the checkpoint's f32 weights on those inputs under
torch.autocast(<device>, dtype=torch.bfloat16), and for every output tensor the script records its
error against outputs/<name>.f32 (the float64 computation):

  rel_fro  ||autocast - reference||_2 / ||reference||_2 over the whole tensor: the measure our bf16
           path is held to (test/model.test.ts on the CPU, tools/parity/full-size.mjs in the GPU kit)
  max_rel  max |autocast - reference| / max |reference|: reported too; on its own it is one
           element's rounding draw (docs/PRECISION.md says why it is not the bar)

It first runs the same pipeline without autocast (fp32; TF32 off on CUDA) and requires it to
reproduce outputs/ within 1e-4, so the numbers measure autocast and not a different computation.
With --weights-only it also records "bf16_weights_only": the errors of a float64 computation whose
Linear weights alone are rounded to bf16, as autocast and our bf16 path both round them: the part of
the error the two share (the score MLP excepted: ours keeps it fp32; docs/PRECISION.md).
Writes FILE (default DIR/outputs/autocast-bf16.json on the CPU, autocast-bf16-cuda.json on CUDA).

With --tf32 it measures instead the fp32 pipeline with torch.backends.cuda.matmul.allow_tf32 on
(what our precision 'tf32' is held to; tf32.json / tf32-cuda.json). TF32 exists only on CUDA: on
the CPU the numbers are fp32's.
Deterministic on the CPU: the same torch build gives the same file.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys

import numpy as np
import torch

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import carzero_ref as R  # noqa: E402
import ckpt_io  # noqa: E402  (installs the fake omegaconf classes the fixture checkpoints pickle)

NAMES = ("img_global", "img_local", "txt_sentence", "txt_words", "i2t", "t2i", "score", "attention")


def model_config(c: dict) -> R.CARZeroConfig:
    """The reference's config from a fixture root's config.json (our carzero-model layout)."""
    v, t, h = c["vision"], c["text"], c["head"]
    return R.CARZeroConfig(
        vision=R.VisionConfig(image_size=v["image_size"], patch_size=v["patch_size"], in_chans=v["in_chans"],
                              width=v["width"], depth=v["depth"], heads=v["heads"], mlp_dim=v["mlp_dim"],
                              eps=v["eps"]),
        text=R.TextConfig(vocab_size=t["vocab_size"], width=t["width"], depth=t["depth"], heads=t["heads"],
                          intermediate=t["intermediate"], max_position=t["max_position"], type_vocab=t["type_vocab"],
                          eps=t["eps"], max_length=t["max_length"], last_n_layers=t["last_n_layers"]),
        head=R.HeadConfig(width=h["width"], heads=h["heads"], depth=h["depth"], ffn=h["ffn"], mlp=list(h["mlp"]),
                          eps=h["eps"]),
    )


def load_model(fx: str) -> "R.CARZeroRef":
    """The reference model of fixture root fx with its checkpoint's f32 weights (eval mode, CPU)."""
    cfg_json = json.load(open(os.path.join(fx, "config.json")))
    ckpt_io.omegaconf_like({})
    path = os.path.join(fx, cfg_json["source"]["checkpoint"])
    try:  # our own benign fixture; torch >= 2.6 would refuse its pickled config classes by default
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except TypeError:  # torch < 1.13 has no weights_only
        ck = torch.load(path, map_location="cpu")
    model = R.CARZeroRef(model_config(cfg_json))
    model.load_state_dict(R.strip_lightning_prefix(ck["state_dict"]), strict=True)
    return model.eval()


def model_batch_pixels(fx: str, idx: dict) -> torch.Tensor:
    """outputs/index.json's model-batch images as (B, 3, 224, 224) f32 (images/ref/<name>.x224.f32)."""
    by_name = {im["name"]: im for im in json.load(open(os.path.join(fx, "images", "index.json")))["images"]}
    xs = []
    for name in idx["images"]:
        n = by_name[name]["normalized"]
        xs.append(np.fromfile(os.path.join(fx, n["file"]), dtype=np.float32).reshape(n["shape"]))
    return R.to_pixels(xs)


def errors_of(got: dict, refs: dict) -> dict:
    out = {}
    for name in NAMES:
        x = got[name].detach().float().cpu().numpy().astype(np.float64).reshape(refs[name].shape)
        r = refs[name]
        out[name] = {"rel_fro": float(np.linalg.norm(x - r) / np.linalg.norm(r)),
                     "max_rel": float(np.abs(x - r).max() / np.abs(r).max())}
    return out


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--fixtures", default=os.path.join(here, "..", "..", "test", "fixtures", "tiny"))
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--out")
    ap.add_argument("--weights-only", action="store_true")
    ap.add_argument("--tf32", action="store_true",
                    help="measure the fp32 model with allow_tf32 on (PyTorch's TF32; the bar of our precision "
                         "tf32) instead of bf16 autocast; on the CPU TF32 does not exist and this is fp32")
    a = ap.parse_args()
    fx = os.path.abspath(a.fixtures)
    dev = torch.device(a.device)
    if a.device == "cuda":  # the fp32 check is real fp32
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    idx = json.load(open(os.path.join(fx, "outputs", "index.json")))
    pixels = model_batch_pixels(fx, idx).to(dev)
    rows = json.load(open(os.path.join(fx, "text", "expected.json")))["rows"][: idx["Q"]]
    L = idx["L"]
    ids = torch.tensor([r["ids"] + [0] * (L - len(r["ids"])) for r in rows], dtype=torch.long)
    mask_all = np.fromfile(os.path.join(fx, "text", "mask.u8"), dtype=np.uint8).reshape(-1, L)[: len(rows)]
    mask = torch.from_numpy(mask_all.astype(np.int64))
    ids_file = np.fromfile(os.path.join(fx, "text", "ids.i32"), dtype=np.int32).reshape(-1, L)[: len(rows)]
    assert np.array_equal(ids_file, ids.numpy()), "text/ids.i32 and expected.json disagree"
    ids, mask = ids.to(dev), mask.to(dev)
    toks = [r["tokens"] for r in rows]
    refs = {}
    for name in NAMES:
        ent = idx["tensors"][name]
        refs[name] = np.fromfile(os.path.join(fx, ent["file"]), dtype=np.float32).astype(np.float64).reshape(
            ent["shape"])

    model = load_model(fx).to(dev)

    def run(autocast: bool, m=model, px=pixels) -> dict:
        with torch.no_grad(), torch.autocast(a.device, dtype=torch.bfloat16, enabled=autocast):
            g, loc = m.embed_images(px)
            words, sent = m.embed_texts(ids, mask, toks)
            sc = m.score(g, loc, sent, words)
        return {"img_global": g, "img_local": loc, "txt_sentence": sent, "txt_words": words,
                "i2t": sc["i2t"], "t2i": sc["t2i"], "score": sc["score"], "attention": sc["attention"]}

    fp32 = errors_of(run(False), refs)
    worst = max(e["max_rel"] for e in fp32.values())
    assert worst < 1e-4, f"the fp32 pass does not reproduce outputs/ ({worst:.2e}): {fp32}"
    if a.tf32:
        if a.device == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        errors = errors_of(run(False), refs)
    else:
        errors = errors_of(run(True), refs)
    what = "fp32 with allow_tf32 (TF32 matmuls)" if a.tf32 else "autocast (bfloat16)"
    out = {
        "mode": "tf32" if a.tf32 else "autocast-bf16",
        "note": (f"PyTorch {what} on this fixture's model and inputs: per output tensor, rel_fro = "
                 "||torch - reference|| / ||reference|| and max_rel = max |torch - reference| / max "
                 "|reference|, the reference being outputs/<name>.f32 (float64 computation); fp32_max_rel: the "
                 "same pipeline in fp32 (no autocast, TF32 off). Made by tools/reference/autocast_bf16.py."),
        "torch": torch.__version__,
        "device": a.device,
        "device_name": torch.cuda.get_device_name(0) if a.device == "cuda" else "cpu",
        "fixtures": os.path.basename(fx),
        "errors": errors,
        "fp32_max_rel": {k: v["max_rel"] for k, v in fp32.items()},
    }
    if a.weights_only:
        m64 = copy.deepcopy(model).double()
        with torch.no_grad():
            for name, mod in m64.named_modules():
                if "mlp_head" in name:  # our bf16 path keeps the score MLP in fp32
                    continue
                if isinstance(mod, torch.nn.Linear):
                    mod.weight.copy_(mod.weight.to(torch.bfloat16).double())
                elif isinstance(mod, torch.nn.MultiheadAttention):
                    for w in (mod.in_proj_weight, mod.out_proj.weight):
                        w.copy_(w.to(torch.bfloat16).double())
        out["bf16_weights_only"] = errors_of(run(False, m64, pixels.double()), refs)
    stem = "tf32" if a.tf32 else "autocast-bf16"
    dst = a.out or os.path.join(fx, "outputs", f"{stem}.json" if a.device == "cpu" else f"{stem}-cuda.json")
    with open(dst, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
