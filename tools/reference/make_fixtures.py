#!/usr/bin/python3
"""Writes the committed golden fixtures of the TINY CARZero configuration to test/fixtures/tiny/.

    /usr/bin/python3 tools/reference/make_fixtures.py [--out test/fixtures/tiny]

Deterministic (seeded); takes a few seconds. Needs torch, numpy, cv2 (python3-opencv), PIL and
pydicom. See tools/reference/README.md and test/fixtures/tiny/README.md for the layout.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys
import time
from collections import OrderedDict

import numpy as np
import torch

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import carzero_ref as R  # noqa: E402
import ckpt_io as IO  # noqa: E402
import fixture_lib as L  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def tiny_config(vocab_size: int) -> R.CARZeroConfig:
    return R.CARZeroConfig(
        vision=R.VisionConfig(width=32, depth=2, heads=2, mlp_dim=64),
        text=R.TextConfig(vocab_size=vocab_size, width=32, depth=5, heads=2, intermediate=64, max_position=128),
        head=R.HeadConfig(width=32, heads=4, depth=2, ffn=48, mlp=[64, 32, 16, 1]),
    )


def hf_bert_config(c: R.TextConfig) -> dict:
    return {
        "architectures": ["BertForPreTraining"],
        "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": c.width,
        "initializer_range": 0.02,
        "intermediate_size": c.intermediate,
        "layer_norm_eps": c.eps,
        "max_position_embeddings": c.max_position,
        "model_type": "bert",
        "num_attention_heads": c.heads,
        "num_hidden_layers": c.depth,
        "pad_token_id": c.pad_token_id,
        "position_embedding_type": "absolute",
        "type_vocab_size": c.type_vocab,
        "vocab_size": c.vocab_size,
    }


def write_bert_folders(out: str, name: str, model: R.CARZeroRef, vocab, seed: int, legacy: bool = True):
    """HF folders: <name>/ (pytorch_model.bin, zip), <name>-st/ (model.safetensors) and optionally
    <name>-legacy/ (pytorch_model.bin in torch's legacy non-zip format, as 2019-2020 uploads such as
    Bio_ClinicalBERT are). Weights = the checkpoint's text encoder + a seeded perturbation
    ("pre-trained" vs the checkpoint's "fine-tuned" weights): expected outputs use the CHECKPOINT's."""
    cfg = model.cfg.text
    g = torch.Generator().manual_seed(seed)
    sd = OrderedDict()
    for k, v in model.text_encoder.model.state_dict().items():
        v = v.clone()
        if v.is_floating_point():
            v = v + 0.01 * torch.randn(v.shape, generator=g)
        sd["bert." + k] = v
    C, V = cfg.width, cfg.vocab_size
    sd["cls.predictions.bias"] = 0.1 * torch.randn(V, generator=g)
    sd["cls.predictions.transform.dense.weight"] = torch.randn(C, C, generator=g) / np.sqrt(C)
    sd["cls.predictions.transform.dense.bias"] = 0.1 * torch.randn(C, generator=g)
    sd["cls.predictions.transform.LayerNorm.weight"] = 1 + 0.1 * torch.randn(C, generator=g)
    sd["cls.predictions.transform.LayerNorm.bias"] = 0.1 * torch.randn(C, generator=g)
    sd["cls.predictions.decoder.weight"] = sd["bert.embeddings.word_embeddings.weight"]  # tied: shared storage
    sd["cls.seq_relationship.weight"] = torch.randn(2, C, generator=g) / np.sqrt(C)
    sd["cls.seq_relationship.bias"] = 0.1 * torch.randn(2, generator=g)
    tok_cfg = {"do_lower_case": True, "model_max_length": 512, "tokenizer_class": "BertTokenizer",
               "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
               "mask_token": "[MASK]", "tokenize_chinese_chars": True, "strip_accents": None}
    dirs = {name: "bin", name + "-st": "st"}
    if legacy:
        dirs[name + "-legacy"] = "legacy"
    for d, kind in dirs.items():
        p = os.path.join(out, d)
        os.makedirs(p, exist_ok=True)
        L.dump_json(os.path.join(p, "config.json"), hf_bert_config(cfg))
        L.dump_json(os.path.join(p, "tokenizer_config.json"), tok_cfg)
        with open(os.path.join(p, "vocab.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(vocab) + "\n")
        if kind == "bin":
            IO.save_zip(sd, os.path.join(p, "pytorch_model.bin"))
        elif kind == "legacy":
            # the legacy format names storages after memory addresses (not reproducible): keep an
            # existing file when it already holds exactly these tensors
            fp = os.path.join(p, "pytorch_model.bin")
            same = False
            if os.path.exists(fp):
                try:
                    old = torch.load(fp, map_location="cpu")  # our own benign file
                    same = list(old) == list(sd) and all(torch.equal(old[k], sd[k]) for k in sd)
                except Exception:
                    same = False
            if not same:
                torch.save(sd, fp, _use_new_zipfile_serialization=False)
        else:
            st = OrderedDict((k, v) for k, v in sd.items()
                             if k != "cls.predictions.decoder.weight" and not k.endswith("position_ids"))
            IO.write_safetensors(st, os.path.join(p, "model.safetensors"), metadata={"format": "pt"})
    return sd


# images fed to the model (in this order); the rest have decode/resize references only
MODEL_BATCH = ["grey8_tall_quirk", "grey16_tall", "rgb_wide", "colour"]

HALF_RULE = "img_encoder.model.blocks.* -> float16; text_encoder.model.encoder.layer.* -> bfloat16; rest as is"


def to_halves(sd):
    out = OrderedDict()
    for k, v in sd.items():
        if k.startswith("img_encoder.model.blocks."):
            v = v.to(torch.float16)
        elif k.startswith("text_encoder.model.encoder.layer."):
            v = v.to(torch.bfloat16)
        out[k] = v
    return out


def run_model(model: R.CARZeroRef, pixels: torch.Tensor, rows, debug: bool = False):
    """float64 forward of the whole pipeline; returns numpy f32 outputs (+ debug traces)."""
    m = copy.deepcopy(model).double().eval()
    px = pixels.double()
    ids = torch.tensor([r["ids"] for r in rows], dtype=torch.long)
    mask = torch.tensor([r["mask"] for r in rows], dtype=torch.long)
    toks = [r["tokens"] for r in rows]
    tv, tt, ti, tq = ({}, {}, {}, {}) if debug else (None, None, None, None)
    g, l = m.embed_images(px, tv)
    words, sent = m.embed_texts(ids, mask, toks, tt)
    with torch.no_grad():
        sc = m.score(g, l, sent, words, ti, tq)
        # per-layer i2t attention weights (for debugging the averaging)
        img_mem = torch.cat([g.unsqueeze(1), l], 1)
        _, ws = m.fusion_module(img_mem, sent)
    out = OrderedDict([
        ("img_global", g), ("img_local", l), ("txt_sentence", sent), ("txt_words", words),
        ("i2t", sc["i2t"]), ("t2i", sc["t2i"]), ("score", sc["score"]), ("attention", sc["attention"]),
    ])
    out = OrderedDict((k, L.f32(v)) for k, v in out.items())
    dbg = None
    if debug:
        dbg = OrderedDict()
        dbg["vit_patch_embed"] = L.f32(tv["patch_embed"][0])
        dbg["vit_tokens_in"] = L.f32(tv["tokens_in"][0])
        for i in range(m.cfg.vision.depth):
            dbg[f"vit_block{i}"] = L.f32(tv[f"block{i}"][0])
        dbg["bert_hidden_states"] = L.f32(torch.stack([h[0] for h in tt["hidden_states"]]))
        dbg["bert_aggregated"] = L.f32(tt["aggregated"][0])
        for i in range(m.cfg.head.depth):
            dbg[f"head_i2t_layer{i}"] = L.f32(ti[f"layer{i}"].transpose(0, 1))  # (B, Q, C)
            dbg[f"head_t2i_layer{i}"] = L.f32(tq[f"layer{i}"])  # (B, Q, C) (queries = images)
        dbg["head_i2t_final_norm"] = L.f32(ti["final_norm"])
        dbg["head_t2i_final_norm"] = L.f32(tq["final_norm"].transpose(0, 1))
        dbg["head_i2t_attention_layers_img0"] = L.f32(torch.stack([w[0] for w in ws]))  # (layers, Q, 1+P)
    return out, dbg


DESCR = {
    "img_global": "final-LayerNorm token 0 (B, C)",
    "img_local": "final-LayerNorm tokens 1..P, row-major patches (B, P, C)",
    "txt_sentence": "sum over the last 4 layers of the mean over all L aggregated entries, zero pads included (Q, C)",
    "txt_words": "aggregated word entries summed over the last 4 layers, zero-padded to L (Q, L, C)",
    "i2t": "head(image memory [global; local] of b, sentence q) (B, Q)",
    "t2i": "head(text memory [sentence; words incl. zero pads] of q, image global b) (Q, B)",
    "score": "(i2t + t2i^T) / 2 (B, Q)",
    "attention": "i2t cross-attention weights averaged over heads and layers, global entry dropped (B, Q, P)",
    "vit_patch_embed": "image 0: conv patch embedding, before pos_embed (P, C)",
    "vit_tokens_in": "image 0: [cls + pos0; patches + pos] entering block 0 (1+P, C)",
    "bert_hidden_states": "prompt 0: embeddings output then every layer's output (depth+1, L, C)",
    "bert_aggregated": "prompt 0: word aggregation of the last 4 layers, before summing (4, L, C)",
    "head_i2t_final_norm": "i2t: decoder output after the final decoder norm, before mlp_head (B, Q, C)",
    "head_t2i_final_norm": "t2i: decoder output after the final decoder norm (Q, B, C)",
    "head_i2t_attention_layers_img0": ("image 0: per-layer i2t attention (heads averaged), "
                                       "global entry kept (layers, Q, 1+P)"),
}


def write_tensors(out_dir: str, sub: str, tensors: "OrderedDict[str, np.ndarray]", meta: dict):
    idx = OrderedDict()
    for k, v in tensors.items():
        desc = DESCR.get(k)
        if desc is None and k.startswith("vit_block"):
            desc = f"image 0: output of ViT block {k[9:]} (1+P, C)"
        if desc is None and k.startswith("head_i2t_layer"):
            desc = f"i2t: query state after decoder layer {k[14:]} (B, Q, C)"
        if desc is None and k.startswith("head_t2i_layer"):
            desc = f"t2i: query state after decoder layer {k[14:]} (B, Q, C), queries = image globals"
        L.write_bin(out_dir, f"{sub}/{k}.f32", v, idx, k, {"description": desc} if desc else None)
    meta = dict(meta)
    meta["tensors"] = idx
    L.dump_json(os.path.join(out_dir, sub, "index.json"), meta)


def generate(out: str, cfg_fn, vocab, seed: int = 1234, tiny: bool = True, log=print):
    t0 = time.time()
    os.makedirs(out, exist_ok=True)
    for sub in ("outputs", "outputs-halves", "images", "text", "evil"):  # no stale files
        if os.path.isdir(os.path.join(out, sub)):
            shutil.rmtree(os.path.join(out, sub))
    cfg = cfg_fn(len(vocab))
    torch.manual_seed(seed)
    model = R.CARZeroRef(cfg)
    L.init_weights(model, seed)
    model.eval()
    sd = model.state_dict()
    log(f"model built ({sum(v.numel() for v in sd.values())} values in the state dict) {time.time() - t0:.1f}s")

    # --- configs
    L.dump_json(os.path.join(out, "config.json"),
                cfg.to_model_dir_json("carzero-tiny.ckpt" if tiny else "carzero-full.ckpt",
                                      "bert-tiny" if tiny else "bert-full"))
    bert_name = "bert-tiny" if tiny else "bert-full"
    write_bert_folders(out, bert_name, model, vocab, seed + 1, legacy=tiny)
    tok = R.BertWordPieceTokenizer.from_dir(os.path.join(out, bert_name))

    # --- checkpoints
    ck_name = "carzero-tiny" if tiny else "carzero-full"
    cfg_dict = IO.original_cfg_dict(cfg)
    ck = IO.lightning_checkpoint(sd, cfg_dict, with_optimizer=tiny)
    IO.save_zip(ck, os.path.join(out, f"{ck_name}.ckpt"))
    hsd = to_halves(sd)
    ck_h = IO.lightning_checkpoint(hsd, cfg_dict, with_optimizer=False)
    if tiny:
        IO.save_zip(ck_h, os.path.join(out, f"{ck_name}-halves.ckpt"), archive_name_from_path=True)
    L.dump_json(os.path.join(out, "checkpoint-index.json"), {
        "note": ("state_dict keys of the checkpoints without the 'CARZero.' prefix; sha256 of each tensor's "
                 "contiguous little-endian bytes in its own dtype. decoder_norm.* and decoder.norm.* are the "
                 "same tensors (one storage). embeddings.position_ids is int64 with stride (0, 1)."),
        "files": {f"{ck_name}.ckpt": "zip top folder 'archive/'",
                  **({f"{ck_name}-halves.ckpt": f"zip top folder '{ck_name}-halves/'; {HALF_RULE}"} if tiny else {})},
        "tensors": IO.tensor_index(sd),
        **({"tensors_halves": IO.tensor_index(hsd)} if tiny else {}),
    })
    log(f"checkpoints written {time.time() - t0:.1f}s")

    # --- malicious files (tiny only)
    if tiny:
        ev = os.path.join(out, "evil")
        os.makedirs(ev, exist_ok=True)
        pk = IO.evil_pickles()
        IO.write_evil_zip(os.path.join(ev, "evil.ckpt"), pk["system"])
        for k, v in pk.items():
            if k != "system":
                IO.write_evil_zip(os.path.join(ev, f"evil-{k}.ckpt"), v)
        IO.write_evil_zip(os.path.join(ev, "evil-state-dict.ckpt"), IO.evil_state_dict_pickle())
        with open(os.path.join(ev, "evil-raw.pkl"), "wb") as f:
            f.write(pk["system"])
        L.dump_json(os.path.join(ev, "index.json"), {
            "warning": "NEVER unpickle these. Each would run `touch /tmp/carzero-evil-marker-<tag>` if executed.",
            "files": {
                "evil.ckpt": "torch zip; data.pkl = GLOBAL 'posix system' + REDUCE at top level",
                "evil-os-system-in-dict.ckpt": "dict {'state_dict': {}, 'hyper_parameters': os.system(...)}",
                "evil-eval.ckpt": "GLOBAL 'builtins eval' + REDUCE",
                "evil-popen.ckpt": "GLOBAL 'subprocess Popen' + REDUCE with an argv list",
                "evil-inst.ckpt": "protocol 0 INST 'os system'",
                "evil-stack-global.ckpt": "protocol 4 FRAME + STACK_GLOBAL ('os', 'system') + REDUCE",
                "evil-newobj-exec.ckpt": "GLOBAL 'builtins exec' + REDUCE",
                "evil-state-dict.ckpt": ("OrderedDict {'w': a real 4-float tensor (storage archive/data/0), "
                                         "'evil': posix.system(...)}: a safe loader may return 'w' = [1,2,3,4] "
                                         "and an inert placeholder for 'evil', or refuse"),
                "evil-raw.pkl": "the evil.ckpt pickle as a bare file (not a zip)",
            },
            "marker_files": "/tmp/carzero-evil-marker-*",
        })

    # --- images
    img_dir = os.path.join(out, "images")
    rasters = L.write_raster_images(img_dir)
    dicoms = L.write_dicoms(img_dir) if tiny else []
    import cv2

    img_index = {
        "preprocess": {
            "read": "cv2.imread(path, 0) (Debian python3-opencv 4.6: libpng / libjpeg-turbo)",
            "resize": ("H, W = shape; if H >= W: new = (H'=256, W'=int(W * (256 / H))) else (H'=int(H * (256 / W)), "
                       "W'=256), float64 arithmetic exactly in this order (int() truncates); cv2.resize INTER_AREA"),
            "pad": "zeros; shorter side: floor(pad / 2) before, ceil(pad / 2) after",
            "crop": "centre 224 of 256: offset 16",
            "normalize": ("float32 at every step: x = f32(u8) / f32(255); x = (x - f32(0.4978)) / f32(0.2449) "
                          "(torchvision ToTensor + Normalize); 3 identical channels"),
        },
        "binary_layout": "row-major, little-endian, no header; u8 = uint8, f32 = float32",
        "images": [],
        "dicom_rule": R.DICOM_RULE,
        "dicom": [],
    }
    xs = []
    for im in rasters:
        p = os.path.join(img_dir, im["file"])
        g8, r256, x = R.preprocess_path(p, cfg.resize, cfg.crop, cfg.mean, cfg.std)
        H, W = g8.shape
        nz_cols = np.where(r256.any(0))[0]
        ent = dict(im)
        ent["bytes"] = os.path.getsize(p)
        if H >= W:
            rs = [256, int(float(W) * (256 / float(H)))]
            pad = 256 - rs[1]
            ent["pad"] = {"top": 0, "bottom": 0, "left": pad // 2, "right": pad - pad // 2}
        else:
            rs = [int(float(H) * (256 / float(W))), 256]
            pad = 256 - rs[0]
            ent["pad"] = {"top": pad // 2, "bottom": pad - pad // 2, "left": 0, "right": 0}
        ent["resized_shape"] = rs
        rc = L.decoder_rule_check(p, g8)
        if rc is not None:
            ent["decode_rule_max_abs_diff"] = rc
        n = im["name"]
        L.write_bin(out, f"images/ref/{n}.gray.u8", g8, ent, "decoded")
        L.write_bin(out, f"images/ref/{n}.r256.u8", r256, ent, "padded")
        ent["in_model_batch"] = n in MODEL_BATCH
        if n in MODEL_BATCH:  # the f32 tensor is stored for the model batch only (size budget)
            L.write_bin(out, f"images/ref/{n}.x224.f32", x, ent, "normalized")
            xs.append((MODEL_BATCH.index(n), x, im))
        img_index["images"].append(ent)
    xs.sort(key=lambda t: t[0])
    batch = [t[2] for t in xs]
    xs = [t[1] for t in xs]
    for dm in dicoms:
        u8 = dm.pop("_u8")
        ent = dict(dm)
        ent["bytes"] = os.path.getsize(os.path.join(img_dir, dm["file"]))
        L.write_bin(out, f"images/ref/{dm['name']}.u8", u8, ent, "expected_u8")
        img_index["dicom"].append(ent)
    L.dump_json(os.path.join(img_dir, "index.json"), img_index)
    log(f"images written {time.time() - t0:.1f}s")

    # --- text
    txt_dir = os.path.join(out, "text")
    os.makedirs(txt_dir, exist_ok=True)
    prompts = L.test_prompts() if tiny else OrderedDict(list(L.test_prompts().items())[:6])
    L.dump_json(os.path.join(txt_dir, "prompts.json"), prompts)
    L.dump_json(os.path.join(txt_dir, "prompts-str.json"), OrderedDict((k, v[0]) for k, v in prompts.items()))
    rows = R.encode_prompts(tok, prompts, cfg.text.max_length)
    tidx = OrderedDict()
    L.write_bin(out, "text/ids.i32", np.array([r["ids"] for r in rows], np.int32), tidx, "ids")
    L.write_bin(out, "text/mask.u8", np.array([r["mask"] for r in rows], np.uint8), tidx, "mask")
    L.write_bin(out, "text/kinds.u8", np.array([r["kinds"] for r in rows], np.uint8), tidx, "kinds")
    text_json = {
        "note": ("prompts.json ({class: [prompt]}) and prompts-str.json ({class: prompt}) give the same rows, "
                 "in key order. Tokenizer: bert folder vocab.txt + tokenizer_config.json; max_length 97."),
        "max_length": cfg.text.max_length,
        "binaries": tidx,
        "rows": [{"class": r["class"], "raw": r["raw"], "cleaned": r["cleaned"],
                  "n_tokens": int(sum(r["mask"])),
                  "tokens": r["tokens"][: int(sum(r["mask"]))], "ids": r["ids"][: int(sum(r["mask"]))],
                  "kinds": r["kinds"][: int(sum(r["mask"]))]} for r in rows],
        "rows_note": ("tokens/ids/kinds listed up to and including [SEP]; after it: [PAD] id "
                      f"{tok.vocab['[PAD]']}, mask 0, kind 3 (see the binaries for the full (Q, 97))"),
    }
    L.dump_json(os.path.join(txt_dir, "expected.json"), text_json)
    if tiny:
        cc = []
        for s in L.clean_cases():
            c = R.clean_text(s)
            cc.append({"raw": s, "cleaned": c, "tokens": tok.tokenize(c)})
        L.dump_json(os.path.join(txt_dir, "clean-cases.json"), {
            "note": "spec 3.1 cleaning (re \\w+, Unicode) then tokens of the cleaned text (no [CLS]/[SEP])",
            "cases": cc})
        rc = [{"raw": s, "basic_tokens": tok.basic_tokenize(s), "tokens": tok.tokenize(s)}
              for s in L.raw_tokenizer_cases()]
        L.dump_json(os.path.join(txt_dir, "tokenizer-raw-cases.json"), {
            "note": ("HF BertTokenizer semantics (do_lower_case=True) on RAW strings, from this repository's "
                     "re-implementation (transformers was not available to cross-check). The faithful path "
                     "only ever tokenises cleaned text ([a-z0-9_ ])."),
            "cases": rc})

    # --- model outputs
    pixels = R.to_pixels(xs)
    outs, dbg = run_model(model, pixels, rows, debug=True)
    meta = {
        "images": [r["name"] for r in batch],
        "classes": [r["class"] for r in rows],
        "B": len(batch), "Q": len(rows), "P": (cfg.vision.image_size // cfg.vision.patch_size) ** 2,
        "L": cfg.text.max_length, "C": cfg.vision.width,
        "inputs": ("pixels = images/ref/<name>.x224.f32 of the listed images (3 equal channels); text = "
                   "text/ids.i32, mask.u8 (tokens from text/expected.json)"),
        "precision": "computed in float64 from the float32 weights and inputs, stored as float32",
        "binary_layout": "row-major float32 little-endian, no header",
    }
    write_tensors(out, "outputs", outs, meta)
    dmeta = dict(meta, note="intermediates for debugging; image 0 / prompt 0 where a single input is named")
    write_tensors(out, "outputs/debug", dbg, dmeta)
    if tiny:
        hmodel = R.CARZeroRef(cfg)
        hmodel.load_state_dict(OrderedDict((k, v.to(sd[k].dtype)) for k, v in hsd.items()))
        houts, _ = run_model(hmodel, pixels, rows)
        houts = OrderedDict((k, v) for k, v in houts.items()
                            if k in ("img_global", "txt_sentence", "i2t", "t2i", "score"))
        write_tensors(out, "outputs-halves", houts,
                      dict(meta, weights=f"{ck_name}-halves.ckpt: {HALF_RULE}; upcast to float32 exactly"))
    log(f"outputs written {time.time() - t0:.1f}s")
    return model, cfg, rows, pixels, outs, tok


def self_check(out: str, model: R.CARZeroRef, cfg, rows, pixels, outs, tiny=True, log=print):
    """Reload what was written (our own, benign files) and recompute."""
    ck_name = "carzero-tiny" if tiny else "carzero-full"
    ck = torch.load(os.path.join(out, f"{ck_name}.ckpt"), map_location="cpu")
    sd = R.strip_lightning_prefix(ck["state_dict"])
    m2 = R.CARZeroRef(cfg)
    m2.load_state_dict(sd, strict=True)
    assert sd["fusion_module.decoder_norm.weight"].data_ptr() == sd["fusion_module.decoder.norm.weight"].data_ptr()
    o2, _ = run_model(m2, pixels, rows)
    for k in outs:
        assert np.array_equal(o2[k], outs[k]), k
    # safetensors round trip (hand-written reader)
    import struct

    bn = "bert-tiny" if tiny else "bert-full"
    with open(os.path.join(out, f"{bn}-st", "model.safetensors"), "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        data = f.read()
    binsd = torch.load(os.path.join(out, bn, "pytorch_model.bin"), map_location="cpu")
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype={"F32": np.float32, "I64": np.int64}[v["dtype"]]).reshape(v["shape"])
        assert np.array_equal(arr, binsd[k].numpy()), k
    if tiny:
        # the tokenizer and the two prompt formats agree
        tok = R.BertWordPieceTokenizer.from_dir(os.path.join(out, bn))
        p1 = json.load(open(os.path.join(out, "text", "prompts.json")), object_pairs_hook=OrderedDict)
        p2 = json.load(open(os.path.join(out, "text", "prompts-str.json")), object_pairs_hook=OrderedDict)
        assert [r["ids"] for r in R.encode_prompts(tok, p1)] == [r["ids"] for r in R.encode_prompts(tok, p2)]
        # halves checkpoint dtypes
        hk = torch.load(os.path.join(out, f"{ck_name}-halves.ckpt"), map_location="cpu")["state_dict"]
        dts = {str(v.dtype) for v in hk.values()}
        assert {"torch.float16", "torch.bfloat16", "torch.float32", "torch.int64"} <= dts, dts
    log("self-check passed: checkpoint reload reproduces every output bit for bit; safetensors == bin")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO, "test", "fixtures", "tiny"))
    args = ap.parse_args()
    vocab = L.tiny_vocab()
    model, cfg, rows, pixels, outs, _ = generate(args.out, tiny_config, vocab, tiny=True)
    self_check(args.out, model, cfg, rows, pixels, outs, tiny=True)
    total = 0
    for dp, _, fs in os.walk(args.out):
        total += sum(os.path.getsize(os.path.join(dp, f)) for f in fs)
    print(f"wrote {args.out}: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
