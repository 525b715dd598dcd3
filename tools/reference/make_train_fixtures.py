#!/usr/bin/python3
"""Writes the gradient parity fixtures of the TINY CARZero configuration to test/fixtures/tiny/train/.

    /usr/bin/python3 tools/reference/make_train_fixtures.py [--fixtures test/fixtures/tiny]

Reads the committed tiny fixtures (carzero-tiny.ckpt, images/ref/*.x224.f32, text/*.i32|u8, bert-tiny/vocab.txt)
and never rewrites them. Everything is computed in float64 and stored as float32. Deterministic; a few seconds.
See test/fixtures/tiny/train/README.md for the layout and docs/TRAINING.md ("Gradient parity fixtures").

Semantics (the original CARZeroDQNWOSAGLMLP.forward + calc_loss, DQNCOSLoss, configs/
mimic_pretrain_llm_dqn_wo_self_atten_mlp_gl.yaml ce_loss_weight 1.0, builder.build_optimizer):
  I = fusion_module([img_global; img_local] of the N images, the N sentence embeddings)   (N, N), I[b, q]
  T = fusion_module([sentence; words] of the N texts,        the N image globals)         (N, N), T[q, b]
  ce(X) = (CE(X, arange) + CE(X^T, arange)) / 2;  loss = 1.0 * ce(I) + 1.0 * ce(T)
  dropout OFF (eval-mode numerics) with autograd on.
  Optimizer: torch.optim.Adam(params with requires_grad, lr 5e-5, betas (0.5, 0.999), eps 1e-8, weight_decay 1e-6)
  and torch.nn.utils.clip_grad_norm_(params, 0.25) between backward and step (Lightning gradient_clip_val 0.25).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import carzero_ref as R  # noqa: E402
import ckpt_io as IO  # noqa: E402
import fixture_lib as L  # noqa: E402
from make_fixtures import MODEL_BATCH, tiny_config  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

TEXT_ROWS = [0, 1, 3, 4]  # distinct, non-empty prompts of text/ids.i32 (Atelectasis, Cardiomegaly, ...)
LR, BETAS, EPS, WD, CLIP, STEPS = 5e-5, (0.5, 0.999), 1e-8, 1e-6, 0.25, 3
TRACKED = [  # parameters whose full values after the 3 steps are stored
    "img_encoder.model.blocks.1.attn.qkv.bias",
    "text_encoder.model.encoder.layer.3.output.LayerNorm.weight",
    "fusion_module.mlp_head.9.bias",
    "text_encoder.model.embeddings.word_embeddings.weight",  # rows with zero grad still move (L2 decay + Adam)
]
ALIASES = {  # state-dict names that are the same tensor as another (one nn.Parameter)
    "fusion_module.decoder.norm.weight": "fusion_module.decoder_norm.weight",
    "fusion_module.decoder.norm.bias": "fusion_module.decoder_norm.bias",
}


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------


def read_bin(root: str, ent: dict) -> np.ndarray:
    dt = {"u8": np.uint8, "i32": np.int32, "f32": np.float32}[ent["dtype"]]
    return np.fromfile(os.path.join(root, ent["file"]), dtype=np.dtype(dt).newbyteorder("<")).reshape(ent["shape"])


def load_model(fx: str):
    cfg = tiny_config(len(R.load_vocab(os.path.join(fx, "bert-tiny", "vocab.txt"))))
    with open(os.path.join(fx, "config.json")) as f:
        on_disk = json.load(f)
    assert on_disk["vision"] == json.loads(json.dumps(cfg.to_model_dir_json()["vision"])), "config.json mismatch"
    assert on_disk["text"] == json.loads(json.dumps(cfg.to_model_dir_json()["text"])), "config.json mismatch"
    assert on_disk["head"] == json.loads(json.dumps(cfg.to_model_dir_json()["head"])), "config.json mismatch"
    if IO._OC is None:  # the pickle's hyper_parameters name omegaconf classes: use the fake ones
        IO._OC = IO._install_fake_omegaconf()
    ck = torch.load(os.path.join(fx, "carzero-tiny.ckpt"), map_location="cpu")  # our own benign file
    sd = R.strip_lightning_prefix(ck["state_dict"])
    model = R.CARZeroRef(cfg)
    model.load_state_dict(sd, strict=True)
    return model, cfg, sd


def load_batch(fx: str):
    with open(os.path.join(fx, "images", "index.json")) as f:
        iidx = json.load(f)
    by_name = {e["name"]: e for e in iidx["images"]}
    xs = [read_bin(fx, by_name[n]["normalized"]) for n in MODEL_BATCH]
    pixels = R.to_pixels(xs)  # (N, 3, 224, 224) f32
    with open(os.path.join(fx, "text", "expected.json")) as f:
        tj = json.load(f)
    b = tj["binaries"]
    ids = read_bin(fx, b["ids"])[TEXT_ROWS].astype(np.int64)
    mask = read_bin(fx, b["mask"])[TEXT_ROWS].astype(np.int64)
    kinds = read_bin(fx, b["kinds"])[TEXT_ROWS]
    vocab = R.load_vocab(os.path.join(fx, "bert-tiny", "vocab.txt"))
    inv = {i: t for t, i in vocab.items()}
    toks = [[inv[int(i)] for i in row] for row in ids]
    for r, row in enumerate(toks):  # the kinds binary agrees with the token strings
        assert R.token_kinds(row) == [int(k) for k in kinds[r]], r
    rows_meta = [tj["rows"][r] for r in TEXT_ROWS]
    for r, m in zip(TEXT_ROWS, rows_meta):
        assert m["n_tokens"] > 2, f"row {r} is empty"
    assert len({tuple(x) for x in ids.tolist()}) == len(TEXT_ROWS), "rows must be distinct"
    return pixels, torch.from_numpy(ids), torch.from_numpy(mask), toks, rows_meta


# ----------------------------------------------------------------------------------------------
# Forward with autograd (the original forward, dropout off)
# ----------------------------------------------------------------------------------------------


def ce(x: torch.Tensor) -> torch.Tensor:
    """DQNCOSLoss: (CE(X, arange) + CE(X^T, arange)) / 2, CE = mean over rows."""
    t = torch.arange(x.shape[0], device=x.device)
    return (F.cross_entropy(x, t) + F.cross_entropy(x.transpose(0, 1), t)) / 2


def forward(m: R.CARZeroRef, pixels, ids, mask, toks):
    g, l = m.img_encoder(pixels)  # (N, C), (N, P, C)
    words, sent = m.text_encoder(ids, mask, toks)  # (N, L, C), (N, C)
    img_mem = torch.cat([g.unsqueeze(1), l], dim=1)  # (N, 1+P, C)
    txt_mem = torch.cat([sent.unsqueeze(1), words], dim=1)  # (N, 1+L, C), zero pads kept
    i2t, _ = m.fusion_module(img_mem, sent)  # (N images, N texts)
    t2i, _ = m.fusion_module(txt_mem, g)  # (N texts, N images)
    ce_i, ce_t = ce(i2t), ce(t2i)
    return {"i2t": i2t, "t2i": t2i, "ce_i2t": ce_i, "ce_t2i": ce_t, "loss": 1.0 * ce_i + 1.0 * ce_t}


def trainable(m):
    """builder.build_optimizer: model.parameters() with requires_grad (deduplicated; pos_embed is frozen)."""
    return [(n, p) for n, p in m.named_parameters() if p.requires_grad]


def grads_of(m, pixels, ids, mask, toks):
    m.zero_grad(set_to_none=True)
    out = forward(m, pixels, ids, mask, toks)
    out["loss"].backward()
    return out


def directional_check(m, pixels, ids, mask, toks, seed=7, h=1e-5):
    """Central finite difference of the loss along one random unit direction over every trainable parameter."""
    params = trainable(m)
    gen = torch.Generator().manual_seed(seed)
    dirs = [torch.randn(p.shape, generator=gen, dtype=torch.float64) for _, p in params]
    nrm = float(sum(float((d * d).sum()) for d in dirs)) ** 0.5
    dirs = [d / nrm for d in dirs]
    analytic = sum(float((p.grad * d).sum()) for (_, p), d in zip(params, dirs) if p.grad is not None)
    with torch.no_grad():
        orig = [p.detach().clone() for _, p in params]
        vals = []
        for s in (+1, -1):
            for (_, p), d, o in zip(params, dirs, orig):
                p.copy_(o + s * h * d)
            vals.append(float(forward(m, pixels, ids, mask, toks)["loss"]))
        for (_, p), o in zip(params, orig):
            p.copy_(o)
    numeric = (vals[0] - vals[1]) / (2 * h)
    return analytic, numeric


def run_steps(model32, pixels32, ids, mask, toks, dtype):
    """STEPS optimizer steps of the original recipe on one batch, in `dtype`. Returns the model, the per-step
    records, the forward after the last step and the TRACKED values before the first step."""
    ms = copy.deepcopy(model32).to(dtype).eval()
    px = pixels32.to(dtype)
    plist = [p for _, p in trainable(ms)]
    opt = torch.optim.Adam(plist, lr=LR, betas=BETAS, eps=EPS, weight_decay=WD)
    pmap = dict(ms.named_parameters())
    before = {n: pmap[n].detach().clone() for n in TRACKED}
    steps = []
    for s in range(STEPS):
        opt.zero_grad(set_to_none=True)
        o = forward(ms, px, ids, mask, toks)
        o["loss"].backward()
        with_grad = [p for p in plist if p.grad is not None]
        total = float(torch.nn.utils.clip_grad_norm_(with_grad, CLIP))
        coef = min(CLIP / (total + 1e-6), 1.0)
        opt.step()
        steps.append(OrderedDict([("step", s + 1), ("loss_before", float(o["loss"])),
                                  ("ce_i2t_before", float(o["ce_i2t"])), ("ce_t2i_before", float(o["ce_t2i"])),
                                  ("grad_norm_before_clip", total), ("clip_coef", coef)]))
    with torch.no_grad():
        oa = forward(ms, px, ids, mask, toks)
    return ms, steps, oa, before


# ----------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", default=os.path.join(REPO, "test", "fixtures", "tiny"))
    args = ap.parse_args()
    fx = args.fixtures
    out = os.path.join(fx, "train")
    if os.path.isdir(out):  # no stale files (README.md is kept)
        for sub in ("grads", "steps"):
            if os.path.isdir(os.path.join(out, sub)):
                shutil.rmtree(os.path.join(out, sub))
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)  # nothing is random in the computation; for the finite-difference direction only

    model32, cfg, sd = load_model(fx)
    pixels32, ids, mask, toks, rows_meta = load_batch(fx)
    N = len(TEXT_ROWS)
    assert pixels32.shape[0] == N

    # --- float64 forward + backward (eval mode: no dropout; autograd on)
    m = copy.deepcopy(model32).double().eval()
    px = pixels32.double()
    o = grads_of(m, px, ids, mask, toks)
    params = trainable(m)
    names_all = list(sd.keys())
    grads = OrderedDict((n, p.grad.detach().clone()) for n, p in params if p.grad is not None)
    pmap0 = dict(m.named_parameters())
    no_grad_params = [n for n, p in m.named_parameters() if n not in grads]  # unused, or frozen (pos_embed)
    for n, p in m.named_parameters():
        if n in grads:
            continue
        assert p.grad is None or not p.requires_grad, n

    # cross-checks: the inference fixture's i2t / t2i for the same images and rows
    oidx = json.load(open(os.path.join(fx, "outputs", "index.json")))["tensors"]
    inf_i2t = read_bin(fx, oidx["i2t"])[:, TEXT_ROWS]
    inf_t2i = read_bin(fx, oidx["t2i"])[TEXT_ROWS, :]
    i2t32, t2i32 = L.f32(o["i2t"]), L.f32(o["t2i"])
    d_inf = max(float(np.abs(i2t32 - inf_i2t).max()), float(np.abs(t2i32 - inf_t2i).max()))
    assert d_inf <= 1e-6, d_inf
    an, nu = directional_check(m, px, ids, mask, toks)
    fd_rel = abs(an - nu) / max(abs(an), 1e-30)
    assert fd_rel < 1e-6, (an, nu)

    # float32 forward/backward, for the precision notes (what an f32 implementation should expect)
    m32 = copy.deepcopy(model32).float().eval()
    o32 = grads_of(m32, pixels32, ids, mask, toks)
    g32 = {n: p.grad for n, p in m32.named_parameters() if p.grad is not None}
    assert set(g32) == set(grads)
    gscale = max(float(g.abs().max()) for g in grads.values())
    f32_grad_abs = max(float((g32[n].double() - g).abs().max()) for n, g in grads.items())
    f32_grad_rel = max(float((g32[n].double() - g).norm() / max(float(g.norm()), 1e-300)) for n, g in grads.items()
                       if float(g.norm()) > 1e-3 * gscale)
    f32_loss = abs(float(o32["loss"]) - float(o["loss"]))

    # --- write: loss, matrices, gradients
    idx = OrderedDict()
    L.write_bin(fx, "train/i2t.f32", i2t32, idx, "i2t",
                {"description": "I[b, q] = head(image memory b, sentence q) (N, N)"})
    L.write_bin(fx, "train/t2i.f32", t2i32, idx, "t2i",
                {"description": "T[q, b] = head(text memory q, image global b) (N, N)"})
    gidx = OrderedDict()
    for n, g in grads.items():
        L.write_bin(fx, f"train/grads/{n}.f32", L.f32(g), gidx, n)
    grad_sq = float(sum(float((g * g).sum()) for g in grads.values()))
    L.dump_json(os.path.join(out, "grads", "index.json"), {
        "note": ("d loss / d parameter for every parameter that gets a gradient, by checkpoint name (no 'CARZero.' "
                 "prefix), float64 computation stored as f32, same shape as the parameter. Files are relative to "
                 "the tiny fixture root (test/fixtures/tiny/)."),
        "grads": gidx,
        "aliases": {k: {"same_tensor_as": v, "note": "one nn.Parameter stored twice in the state dict: its gradient "
                        "is the sum of both uses (the input LayerNorm of the head and the decoder's final norm)"}
                    for k, v in ALIASES.items()},
        "no_grad": no_grad_params,
        "no_grad_reason": {n: ("frozen (requires_grad=False)" if not pmap0[n].requires_grad
                               else "unused by the forward")
                           for n in no_grad_params},
        "no_grad_note": ("parameters with no gradient (grad None): unused by the forward (decoder self_attn, norm1, "
                         "BERT pooler, logit_scale) or frozen (img_encoder.model.pos_embed, requires_grad=False in "
                         "the original MRM). They are skipped by clipping and by Adam (weight decay included). "
                         "Buffer text_encoder.model.embeddings.position_ids is not a parameter."),
        "zero_rows_note": ("word_embeddings row 0 ([PAD], padding_idx) and every row of an id absent from the batch "
                           "have exactly zero gradient, as have position_embeddings rows >= the longest prompt's "
                           "token count and token_type_embeddings row 1; they are still parameters WITH a gradient "
                           "(dense zeros), so Adam's L2 decay moves them."),
        "global_norm": grad_sq ** 0.5,
    })

    loss_json = OrderedDict([
        ("loss", float(o["loss"])),
        ("ce_i2t", float(o["ce_i2t"])),
        ("ce_t2i", float(o["ce_t2i"])),
        ("formula", "loss = ce_loss_weight * (ce(I) + ce(T)), ce_loss_weight = 1.0; "
                    "ce(X) = (CE(X, arange(N)) + CE(X^T, arange(N))) / 2; CE = mean softmax cross-entropy over rows"),
        ("N", N),
        ("images", list(MODEL_BATCH)),
        ("image_inputs", "images/ref/<name>.x224.f32 (224, 224) of the listed images, in this order, 3 equal channels"),
        ("text_rows", TEXT_ROWS),
        ("text_inputs", "rows text_rows of text/ids.i32, text/mask.u8, text/kinds.u8, in this order; pair i = "
                        "(images[i], text_rows[i]); token_type_ids all 0"),
        ("classes", [r["class"] for r in rows_meta]),
        ("cleaned", [r["cleaned"] for r in rows_meta]),
        ("matrices", idx),
        ("grads_index", "train/grads/index.json"),
        ("dropout", "off: eval-mode numerics with autograd (the original trains with dropout 0.1 in BERT, the head "
                    "and mlp_head; a deterministic test needs it off)"),
        ("precision", OrderedDict([
            ("computed", "float64 from the float32 checkpoint weights and float32 pixels; stored as float32"),
            ("check_inference", f"max |i2t, t2i - outputs/i2t, t2i (rows {TEXT_ROWS})| = {d_inf:.3g}"),
            ("check_finite_difference", f"directional derivative along a random direction over all trainable "
                                        f"parameters (unit norm): analytic {an:.12g}, central FD (h=1e-5) {nu:.12g}, "
                                        f"rel diff {fd_rel:.2g}"),
            ("float32_reference", OrderedDict([
                ("note", "the same forward/backward run entirely in float32 (torch 1.13 CPU), compared to float64"),
                ("loss_abs_diff", f32_loss),
                ("grad_max_abs_diff", f32_grad_abs),
                ("grad_max_rel_l2_diff", f32_grad_rel),
                ("grad_max_abs", gscale),
                ("grad_rel_note", "relative L2 error per tensor, over tensors whose max |grad| > 1e-3 * grad_max_abs"),
            ])),
        ])),
    ])

    # --- 3 optimizer steps of the original recipe, float64 (and float32, for the precision notes)
    ms, steps, oa, before = run_steps(model32, pixels32, ids, mask, toks, torch.float64)
    assert abs(steps[0]["loss_before"] - float(o["loss"])) < 1e-12
    assert abs(steps[0]["grad_norm_before_clip"] - grad_sq ** 0.5) < 1e-9
    pmap = dict(ms.named_parameters())
    ms32, steps32, oa32, _ = run_steps(model32, pixels32, ids, mask, toks, torch.float32)
    pmap32 = dict(ms32.named_parameters())
    f32_steps = OrderedDict([
        ("note", "the same 3 steps run entirely in float32 (torch 1.13 CPU), compared to float64"),
        ("loss_before_abs_diff", [abs(a["loss_before"] - b["loss_before"]) for a, b in zip(steps, steps32)]),
        ("loss_after_abs_diff", abs(float(oa["loss"]) - float(oa32["loss"]))),
        ("grad_norm_rel_diff", [abs(a["grad_norm_before_clip"] - b["grad_norm_before_clip"])
                                / a["grad_norm_before_clip"]
                                for a, b in zip(steps, steps32)]),
        ("params_after_max_abs_diff", OrderedDict(
            (n, float((pmap32[n].detach().double() - pmap[n].detach()).abs().max())) for n in TRACKED)),
        ("params_after_max_abs_diff_over_lr", OrderedDict(
            (n, float((pmap32[n].detach().double() - pmap[n].detach()).abs().max()) / LR) for n in TRACKED)),
    ])
    sidx = OrderedDict()
    for n in TRACKED:
        p = pmap[n].detach()
        L.write_bin(fx, f"train/steps/{n}.f32", L.f32(p), sidx, n, {
            "delta_file": f"train/steps/{n}.delta.f32"})
        L.write_bin(fx, f"train/steps/{n}.delta.f32", L.f32(p - before[n]), sidx, n + ".delta")
        sidx[n]["max_abs_delta"] = float((p - before[n]).abs().max())
    for n in list(sidx):
        if n.endswith(".delta"):
            del sidx[n]
    steps_json = OrderedDict([
        ("note", ("3 optimizer steps on the same batch, float64, dropout off. Each step: zero grads; forward; "
                  "loss.backward(); total = clip_grad_norm_(params with a grad, 0.25); Adam step. Files are relative "
                  "to the tiny fixture root.")),
        ("optimizer", OrderedDict([
            ("class", "torch.optim.Adam (not AdamW)"), ("lr", LR), ("betas", list(BETAS)), ("eps", EPS),
            ("weight_decay", WD), ("amsgrad", False),
            ("params", "every parameter with requires_grad (pos_embed is frozen); those whose grad is None "
                       "(no_grad in grads/index.json) are skipped entirely"),
            ("update", ("g = grad_clipped + weight_decay * p; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g; "
                        "p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)  (torch 1.13 Adam, t = 1, 2, 3; "
                        "m, v start at 0)")),
        ])),
        ("clip", OrderedDict([
            ("max_norm", CLIP), ("norm", "global L2 over all parameter gradients (before weight decay)"),
            ("rule", "coef = min(max_norm / (total + 1e-6), 1); grad *= coef (torch 1.13 clip_grad_norm_)"),
        ])),
        ("steps", steps),
        ("loss_after", float(oa["loss"])),
        ("float32_reference", f32_steps),
        ("params_after", sidx),
        ("params_note", ("full values after step 3 (f32) and <name>.delta.f32 = after - before, computed in float64 "
                         "then rounded (the deltas are ~1e-4, so they keep more significant bits than the values). "
                         "word_embeddings: rows whose gradient is exactly zero (ids not in the batch, [PAD] row 0) "
                         "still move by about lr per step, because Adam normalises the tiny L2-decay gradient "
                         "1e-6 * p (|g| comparable to eps 1e-8 only where |p| < ~1e-2).")),
    ])
    L.dump_json(os.path.join(out, "loss.json"), loss_json)
    L.dump_json(os.path.join(out, "steps.json"), steps_json)

    total = 0
    for dp, _, fs in os.walk(out):
        total += sum(os.path.getsize(os.path.join(dp, f)) for f in fs)
    print(f"loss {loss_json['loss']:.10f} (ce_i2t {loss_json['ce_i2t']:.10f}, ce_t2i {loss_json['ce_t2i']:.10f})")
    print(f"grads: {len(grads)} tensors with a gradient, {len(no_grad_params)} without; "
          f"global norm {grad_sq ** 0.5:.6g}")
    print(f"checks: inference match {d_inf:.3g}; FD rel {fd_rel:.2g}; f32 vs f64 loss {f32_loss:.3g}, "
          f"grad max abs {f32_grad_abs:.3g}, max rel L2 {f32_grad_rel:.3g}")
    for s in steps:
        print(f"step {s['step']}: loss {s['loss_before']:.10f}, grad norm {s['grad_norm_before_clip']:.6g}, "
              f"clip coef {s['clip_coef']:.6g}")
    print(f"loss after 3 steps {steps_json['loss_after']:.10f}")
    print(f"wrote {out}: {total / 1e6:.3f} MB")


if __name__ == "__main__":
    main()
