#!/usr/bin/python3
"""Independent cross-checks of carzero_ref.py against torch's own building blocks.

    /usr/bin/python3 tools/reference/check_ref.py [--fixtures test/fixtures/tiny]

- ViT blocks   vs torch.nn.TransformerEncoderLayer(norm_first=True, gelu, eps 1e-6)
- BERT layers  vs torch.nn.TransformerEncoderLayer(norm_first=False, gelu, eps 1e-12) + key padding mask
- head         vs a literal per-pair loop of spec 4 written with plain matmuls
- aggregation  vs a per-text loop over `kinds` (docs/MODEL-FORMAT.md)
- fixtures     the committed outputs are reproduced from the committed checkpoint and inputs
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import carzero_ref as R  # noqa: E402
import fixture_lib as L  # noqa: E402
import make_fixtures as MF  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def check_vit(m: R.CARZeroRef, x):
    v = m.img_encoder.model
    tr = {}
    v(x, tr)
    h = tr["tokens_in"]
    C = v.cfg.width
    for i, blk in enumerate(v.blocks):
        t = nn.TransformerEncoderLayer(C, v.cfg.heads, v.cfg.mlp_dim, dropout=0.0, activation="gelu",
                                       layer_norm_eps=v.cfg.eps, batch_first=True, norm_first=True).double().eval()
        t.self_attn.in_proj_weight.data.copy_(blk.attn.qkv.weight)
        t.self_attn.in_proj_bias.data.copy_(blk.attn.qkv.bias)
        t.self_attn.out_proj.weight.data.copy_(blk.attn.proj.weight)
        t.self_attn.out_proj.bias.data.copy_(blk.attn.proj.bias)
        t.linear1.load_state_dict(blk.mlp.fc1.state_dict())
        t.linear2.load_state_dict(blk.mlp.fc2.state_dict())
        t.norm1.load_state_dict(blk.norm1.state_dict())
        t.norm2.load_state_dict(blk.norm2.state_dict())
        h = t(h)
        d = (h - tr[f"block{i}"]).abs().max().item()
        assert d < 1e-10, (i, d)
    print("ViT blocks == nn.TransformerEncoderLayer(norm_first=True)")


def check_bert(m: R.CARZeroRef, ids, mask):
    b = m.text_encoder.model
    hs = b(ids, mask)
    h = hs[0]
    C = b.cfg.width
    for i, lay in enumerate(b.encoder.layer):
        t = nn.TransformerEncoderLayer(C, b.cfg.heads, b.cfg.intermediate, dropout=0.0, activation="gelu",
                                       layer_norm_eps=b.cfg.eps, batch_first=True, norm_first=False).double().eval()
        sa = lay.attention.self
        t.self_attn.in_proj_weight.data.copy_(torch.cat([sa.query.weight, sa.key.weight, sa.value.weight]))
        t.self_attn.in_proj_bias.data.copy_(torch.cat([sa.query.bias, sa.key.bias, sa.value.bias]))
        t.self_attn.out_proj.weight.data.copy_(lay.attention.output.dense.weight)
        t.self_attn.out_proj.bias.data.copy_(lay.attention.output.dense.bias)
        t.norm1.load_state_dict(lay.attention.output.LayerNorm.state_dict())
        t.linear1.load_state_dict(lay.intermediate.dense.state_dict())
        t.linear2.load_state_dict(lay.output.dense.state_dict())
        t.norm2.load_state_dict(lay.output.LayerNorm.state_dict())
        h = t(h, src_key_padding_mask=(mask == 0))
        real = mask.bool()
        d = (h - hs[i + 1])[real].abs().max().item()  # torch may skip padded rows; compare real tokens
        assert d < 1e-10, (i, d)
        h = hs[i + 1]
    print("BERT layers == nn.TransformerEncoderLayer(norm_first=False) on real tokens")


def head_loop(hd: R.TQNHead, M, q):
    """spec 4 for one pair, literally."""
    C = hd.d_model
    ln = lambda z: F.layer_norm(z, (C,), hd.decoder_norm.weight, hd.decoder_norm.bias, hd.decoder_norm.eps)  # noqa
    m = ln(M)
    t = ln(q)
    atts = []
    for lay in hd.decoder.layers:
        a = lay.multihead_attn
        H = a.num_heads
        Wq, Wk, Wv = a.in_proj_weight.chunk(3)
        bq, bk, bv = a.in_proj_bias.chunk(3)
        Q = (lay.norm2(t) @ Wq.T + bq).view(H, -1)
        K = (m @ Wk.T + bk).view(-1, H, C // H).transpose(0, 1)
        V = (m @ Wv.T + bv).view(-1, H, C // H).transpose(0, 1)
        w = torch.softmax((K @ Q.unsqueeze(-1)).squeeze(-1) / np.sqrt(C // H), -1)  # (H, S)
        o = (w.unsqueeze(-1) * V).sum(1).reshape(C)
        t = t + a.out_proj(o)
        t = t + lay.linear2(F.relu(lay.linear1(lay.norm3(t))))
        atts.append(w.mean(0))
    return hd.mlp_head(ln(t)).squeeze(-1), torch.stack(atts).mean(0)


def check_head_and_aggregation(m, g, l, ids, mask, toks, kinds):
    words, sent = m.text_encoder(ids, mask, toks)
    # aggregation from kinds
    hs = m.text_encoder.model(ids, mask)[-m.cfg.text.last_n_layers:]
    E = torch.stack(hs).sum(0)  # sum over layers commutes with the aggregation
    for qi in range(ids.shape[0]):
        ent = []
        for j, k in enumerate(kinds[qi]):
            if k == 0:
                ent.append(E[qi, j].clone())
            elif k == 1:
                ent[-1] += E[qi, j]
            elif k == 2:
                ent.append(E[qi, j])
                break
        W = torch.zeros_like(words[qi])
        W[: len(ent)] = torch.stack(ent)
        assert (W - words[qi]).abs().max() < 1e-10
        assert (W.sum(0) / W.shape[0] - sent[qi]).abs().max() < 1e-10
    print("word aggregation == kinds-based loop; sentence == sum / L")
    sc = m.score(g, l, sent, words)
    hd = m.fusion_module
    for b in range(g.shape[0]):
        for q in range(sent.shape[0]):
            v, att = head_loop(hd, torch.cat([g[b:b + 1], l[b]]), sent[q])
            assert abs(v - sc["i2t"][b, q]) < 1e-10
            assert (att[1:] - sc["attention"][b, q]).abs().max() < 1e-10
            v2, _ = head_loop(hd, torch.cat([sent[q:q + 1], words[q]]), g[b])
            assert abs(v2 - sc["t2i"][q, b]) < 1e-10
            assert abs((v + v2) / 2 - sc["score"][b, q]) < 1e-10
    print("head i2t / t2i / score / attention == literal per-pair loop")


def check_fixtures(fx: str):
    idx = json.load(open(os.path.join(fx, "outputs", "index.json")))
    img_idx = json.load(open(os.path.join(fx, "images", "index.json")))
    ents = {e["name"]: e for e in img_idx["images"]}
    xs = []
    for n in idx["images"]:
        e = ents[n]["normalized"]
        xs.append(np.fromfile(os.path.join(fx, e["file"]), np.float32).reshape(e["shape"]))
        g8, r256, x = R.preprocess_path(os.path.join(fx, "images", ents[n]["file"]))
        assert np.array_equal(x, xs[-1]), n
    for n, e in ents.items():
        g8, r256, x = R.preprocess_path(os.path.join(fx, "images", e["file"]))
        assert np.array_equal(g8, np.fromfile(os.path.join(fx, e["decoded"]["file"]), np.uint8).reshape(g8.shape)), n
        assert np.array_equal(r256, np.fromfile(os.path.join(fx, e["padded"]["file"]), np.uint8).reshape(256, 256)), n
    t = json.load(open(os.path.join(fx, "text", "expected.json")))
    Q = len(t["rows"])
    ids = np.fromfile(os.path.join(fx, "text", "ids.i32"), np.int32).reshape(Q, -1)
    mask = np.fromfile(os.path.join(fx, "text", "mask.u8"), np.uint8).reshape(Q, -1)
    tok = R.BertWordPieceTokenizer.from_dir(os.path.join(fx, "bert-tiny"))
    rows = [{"ids": ids[i].tolist(), "mask": mask[i].tolist(), "tokens": [tok.inv[j] for j in ids[i]]}
            for i in range(Q)]
    cfg = MF.tiny_config(len(tok.vocab))
    m = R.CARZeroRef(cfg)
    ck = torch.load(os.path.join(fx, "carzero-tiny.ckpt"), map_location="cpu")  # our own benign file
    m.load_state_dict(R.strip_lightning_prefix(ck["state_dict"]))
    outs, _ = MF.run_model(m, R.to_pixels(xs), rows)
    for k, e in idx["tensors"].items():
        ref = np.fromfile(os.path.join(fx, e["file"]), np.float32).reshape(e["shape"])
        assert np.array_equal(ref, outs[k]), k
    print(f"fixtures in {fx} reproduced bit for bit")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", default=os.path.join(REPO, "test", "fixtures", "tiny"))
    a = ap.parse_args()
    torch.manual_seed(0)
    vocab = L.tiny_vocab()
    cfg = MF.tiny_config(len(vocab))
    m = R.CARZeroRef(cfg)
    L.init_weights(m, 77)
    m = m.double().eval()
    tok = R.BertWordPieceTokenizer({t: i for i, t in enumerate(vocab)})
    rows = R.encode_prompts(tok, L.test_prompts())
    ids = torch.tensor([r["ids"] for r in rows])
    mask = torch.tensor([r["mask"] for r in rows])
    x = torch.randn(3, 3, 224, 224, dtype=torch.float64)
    with torch.no_grad():
        check_vit(m, x)
        check_bert(m, ids, mask)
        g, l = m.img_encoder(x)
        check_head_and_aggregation(m, g, l, ids, mask, [r["tokens"] for r in rows], [r["kinds"] for r in rows])
    if os.path.isdir(a.fixtures):
        # carzero-tiny.ckpt pickles fake omegaconf classes; importing fixture code installs them
        import ckpt_io

        ckpt_io.omegaconf_like({})
        check_fixtures(a.fixtures)


if __name__ == "__main__":
    main()
