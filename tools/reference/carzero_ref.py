"""Plain-PyTorch reference implementation of CARZero (CVPR 2024) inference.

Written for the carzero npm package as the golden reference that the TypeScript and C++ code
is tested against. Semantics: docs/SPEC.md in this repository. The
module tree reproduces the ORIGINAL parameter names so that ``CARZeroRef().state_dict()`` keys
equal the released checkpoint's keys after removing the ``CARZero.`` prefix:

  text_encoder.model.*   Hugging Face ``BertModel`` names (+ ``embeddings.position_ids`` buffer)
  img_encoder.model.*    timm ``VisionTransformer`` / MRM names
  fusion_module.*        ``TQN_Model`` (decoder without self-attention, MLP head)

Only torch and numpy are needed (cv2 for image reading). No transformers / timm / omegaconf.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass, field, asdict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------


@dataclass
class VisionConfig:
    image_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    width: int = 768
    depth: int = 12
    heads: int = 12
    mlp_dim: int = 3072
    eps: float = 1e-6


@dataclass
class TextConfig:
    vocab_size: int = 28996
    width: int = 768
    depth: int = 12
    heads: int = 12
    intermediate: int = 3072
    max_position: int = 512
    type_vocab: int = 2
    eps: float = 1e-12
    max_length: int = 97
    last_n_layers: int = 4
    pad_token_id: int = 0


@dataclass
class HeadConfig:
    width: int = 768
    heads: int = 4
    depth: int = 4
    ffn: int = 1024
    mlp: List[int] = field(default_factory=lambda: [1024, 512, 256, 1])
    eps: float = 1e-5
    dropout: float = 0.1


@dataclass
class CARZeroConfig:
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    resize: int = 256
    crop: int = 224
    mean: float = 0.4978
    std: float = 0.2449

    def to_model_dir_json(self, checkpoint: str = "", text_model: str = "") -> dict:
        """The ``config.json`` of the carzero model directory (docs/MODEL-FORMAT.md)."""
        return {
            "format": "carzero-model",
            "format_version": 1,
            "vision": asdict(self.vision),
            "text": {k: v for k, v in asdict(self.text).items() if k != "pad_token_id"},
            "head": {k: v for k, v in asdict(self.head).items() if k != "dropout"},
            "preprocess": {"resize": self.resize, "crop": self.crop, "mean": self.mean, "std": self.std},
            "source": {"checkpoint": checkpoint, "text_model": text_model},
        }


# ----------------------------------------------------------------------------------------------
# Image encoder: ViT-B/16 with timm names (MRM / M3AE pre-trained in the original)
# ----------------------------------------------------------------------------------------------


class PatchEmbed(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.proj = nn.Conv2d(cfg.in_chans, cfg.width, kernel_size=cfg.patch_size, stride=cfg.patch_size)

    def forward(self, x):
        x = self.proj(x)  # (B, C, h, w)
        return x.flatten(2).transpose(1, 2)  # (B, h*w, C), row-major patches


class ViTAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class ViTMlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))  # exact (erf) GELU


class ViTBlock(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.width, eps=cfg.eps)
        self.attn = ViTAttention(cfg.width, cfg.heads)
        self.norm2 = nn.LayerNorm(cfg.width, eps=cfg.eps)
        self.mlp = ViTMlp(cfg.width, cfg.mlp_dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        x = x + self.mlp(self.norm2(x))
        return x


class VisionTransformer(nn.Module):
    """MRM.image_encoder of the original: returns (token 0, tokens 1..P) after the final norm."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.cfg = cfg
        num_patches = (cfg.image_size // cfg.patch_size) ** 2
        self.patch_embed = PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, cfg.width), requires_grad=False)
        self.blocks = nn.ModuleList([ViTBlock(cfg) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(cfg.width, eps=cfg.eps)

    def forward(self, x, trace: Optional[dict] = None):
        x = self.patch_embed(x)
        if trace is not None:
            trace["patch_embed"] = x
        x = x + self.pos_embed[:, 1:, :]
        cls = (self.cls_token + self.pos_embed[:, :1, :]).expand(x.shape[0], -1, -1)
        x = torch.cat((cls, x), dim=1)
        if trace is not None:
            trace["tokens_in"] = x
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            if trace is not None:
                trace[f"block{i}"] = x
        x = self.norm(x)
        return x[:, 0, :], x[:, 1:, :]


class ImageEncoder(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.model = VisionTransformer(cfg)
        # global_embedder / local_embedder are nn.Identity in the original (no parameters).

    def forward(self, x, trace: Optional[dict] = None):
        return self.model(x, trace)


# ----------------------------------------------------------------------------------------------
# Text encoder: BERT-base with Hugging Face BertModel names
# ----------------------------------------------------------------------------------------------


class BertEmbeddings(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.width, padding_idx=cfg.pad_token_id)
        self.position_embeddings = nn.Embedding(cfg.max_position, cfg.width)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab, cfg.width)
        self.LayerNorm = nn.LayerNorm(cfg.width, eps=cfg.eps)
        # As HF BertEmbeddings: an expanded arange (stride 0 on dim 0), int64, persistent.
        self.register_buffer("position_ids", torch.arange(cfg.max_position).expand((1, -1)))

    def forward(self, ids, token_type_ids):
        L = ids.shape[1]
        pos = self.position_ids[:, :L]
        x = self.word_embeddings(ids) + self.token_type_embeddings(token_type_ids) + self.position_embeddings(pos)
        return self.LayerNorm(x)


class BertSelfAttention(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.heads = cfg.heads
        self.head_dim = cfg.width // cfg.heads
        self.query = nn.Linear(cfg.width, cfg.width)
        self.key = nn.Linear(cfg.width, cfg.width)
        self.value = nn.Linear(cfg.width, cfg.width)

    def forward(self, x, ext_mask):
        B, L, C = x.shape

        def split(t):
            return t.view(B, L, self.heads, self.head_dim).permute(0, 2, 1, 3)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)
        scores = scores + ext_mask
        probs = scores.softmax(dim=-1)
        ctx = (probs @ v).permute(0, 2, 1, 3).reshape(B, L, C)
        return ctx


class BertSelfOutput(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.width, cfg.width)
        self.LayerNorm = nn.LayerNorm(cfg.width, eps=cfg.eps)

    def forward(self, h, x):
        return self.LayerNorm(self.dense(h) + x)


class BertAttention(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.self = BertSelfAttention(cfg)
        self.output = BertSelfOutput(cfg)

    def forward(self, x, ext_mask):
        return self.output(self.self(x, ext_mask), x)


class BertIntermediate(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.width, cfg.intermediate)

    def forward(self, x):
        return F.gelu(self.dense(x))  # hidden_act "gelu" = exact erf GELU


class BertOutput(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.intermediate, cfg.width)
        self.LayerNorm = nn.LayerNorm(cfg.width, eps=cfg.eps)

    def forward(self, h, x):
        return self.LayerNorm(self.dense(h) + x)


class BertLayer(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.attention = BertAttention(cfg)
        self.intermediate = BertIntermediate(cfg)
        self.output = BertOutput(cfg)

    def forward(self, x, ext_mask):
        a = self.attention(x, ext_mask)
        return self.output(self.intermediate(a), a)


class BertEncoderStack(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(cfg) for _ in range(cfg.depth)])


class BertPooler(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.width, cfg.width)


class BertModel(nn.Module):
    """HF BertModel (post-norm). forward returns all hidden states [emb, layer1, ..., layerN]."""

    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.cfg = cfg
        self.embeddings = BertEmbeddings(cfg)
        self.encoder = BertEncoderStack(cfg)
        self.pooler = BertPooler(cfg)  # present in the checkpoint, unused by CARZero

    def forward(self, ids, mask, token_type_ids=None):
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(ids)
        x = self.embeddings(ids, token_type_ids)
        dtype = x.dtype
        # HF get_extended_attention_mask: (1 - mask) * finfo(dtype).min, broadcast over heads/queries
        ext = (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min
        hidden = [x]
        for layer in self.encoder.layer:
            x = layer(x, ext)
            hidden.append(x)
        return hidden


class TextEncoder(nn.Module):
    """The original BertEncoder: last-4-layer word aggregation (spec 3.4)."""

    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.cfg = cfg
        self.model = BertModel(cfg)

    def forward(self, ids, mask, tokens: Sequence[Sequence[str]], trace: Optional[dict] = None):
        """ids/mask (Q, L); tokens: the token strings of each row (id -> vocab entry).

        Returns word embeddings (Q, L, C) and sentence embeddings (Q, C).
        """
        hidden = self.model(ids, mask)
        if trace is not None:
            trace["hidden_states"] = hidden
        n = self.cfg.last_n_layers
        emb = torch.stack(hidden[-n:]).permute(1, 0, 2, 3)  # (Q, layers, L, C)
        agg = aggregate_tokens(emb, tokens)  # (Q, layers, L, C)
        if trace is not None:
            trace["aggregated"] = agg
        sent = agg.mean(dim=2).sum(dim=1)  # mean over ALL L entries (zero pads included)
        words = agg.sum(dim=1)
        return words, sent


def aggregate_tokens(emb: torch.Tensor, tokens: Sequence[Sequence[str]]) -> torch.Tensor:
    """CARZero BertEncoder.aggregate_tokens. emb (Q, layers, L, C) -> (Q, layers, L, C)."""
    Q, NL, L, C = emb.shape
    e = emb.permute(0, 2, 1, 3)  # (Q, L, layers, C)
    out = []
    for q in range(Q):
        entries = []
        bank: List[torch.Tensor] = []
        for j in range(L):
            tok = tokens[q][j]
            v = e[q, j]
            if tok == "[SEP]":
                entries.append(torch.stack(bank).sum(0))
                entries.append(v)
                break
            if not tok.startswith("##"):
                if len(bank) == 0:
                    bank.append(v)
                else:
                    entries.append(torch.stack(bank).sum(0))
                    bank = [v]
            else:
                bank.append(v)
        ent = torch.stack(entries)
        pad = torch.zeros(L - len(ent), NL, C, dtype=emb.dtype, device=emb.device)
        out.append(torch.cat([ent, pad]))
    return torch.stack(out).permute(0, 2, 1, 3)


# ----------------------------------------------------------------------------------------------
# Alignment head: TQN_Model without self-attention, MLP head
# ----------------------------------------------------------------------------------------------


class DecoderLayerWoSelfAttn(nn.Module):
    """TransformerDecoderWoSelfAttenLayer, normalize_before=True (forward_pre)."""

    def __init__(self, d: int, heads: int, ffn: int, dropout: float, eps: float):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, heads, dropout=dropout)  # unused
        self.multihead_attn = nn.MultiheadAttention(d, heads, dropout=dropout)
        self.linear1 = nn.Linear(d, ffn)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(ffn, d)
        self.norm1 = nn.LayerNorm(d, eps=eps)  # unused
        self.norm2 = nn.LayerNorm(d, eps=eps)
        self.norm3 = nn.LayerNorm(d, eps=eps)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(self, tgt, memory):
        t2 = self.norm2(tgt)
        t2, w = self.multihead_attn(query=t2, key=memory, value=memory)  # w averaged over heads
        tgt = tgt + self.dropout2(t2)
        t2 = self.norm3(tgt)
        t2 = self.linear2(self.dropout(F.relu(self.linear1(t2))))
        tgt = tgt + self.dropout3(t2)
        return tgt, w


class TransformerDecoder(nn.Module):
    def __init__(self, layers: List[nn.Module], norm: nn.Module):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.norm = norm  # the SAME module as TQN.decoder_norm -> stored twice in the state dict

    def forward(self, tgt, memory, trace: Optional[dict] = None):
        out = tgt
        ws = []
        for i, layer in enumerate(self.layers):
            out, w = layer(out, memory)
            ws.append(w)
            if trace is not None:
                trace[f"layer{i}"] = out
        out = self.norm(out)
        return out, ws


class TQNHead(nn.Module):
    def __init__(self, cfg: HeadConfig):
        super().__init__()
        d = cfg.width
        self.d_model = d
        self.logit_scale = nn.Parameter(torch.ones([]) * np.log(1 / 0.07))  # unused
        self.decoder_norm = nn.LayerNorm(d, eps=cfg.eps)
        layers = [DecoderLayerWoSelfAttn(d, cfg.heads, cfg.ffn, cfg.dropout, cfg.eps) for _ in range(cfg.depth)]
        self.decoder = TransformerDecoder(layers, self.decoder_norm)
        self.dropout_feas = nn.Dropout(cfg.dropout)
        mods: List[nn.Module] = []
        prev = d
        for i, n in enumerate(cfg.mlp):
            mods.append(nn.Linear(prev, n))
            if i + 1 < len(cfg.mlp):
                mods += [nn.ReLU(inplace=True), nn.Dropout(cfg.dropout)]
            prev = n
        self.mlp_head = nn.Sequential(*mods)  # Linear indices 0, 3, 6, 9

    def forward(self, memory_bsc, query_qc, trace: Optional[dict] = None):
        """memory (Bm, S, C), queries (Nq, C) -> logits (Bm, Nq), attention list of (Bm, Nq, S).

        Every query is paired with every memory item (the original repeats the queries over the
        memory batch); no masks anywhere.
        """
        Bm = memory_bsc.shape[0]
        mem = memory_bsc.transpose(0, 1)  # (S, Bm, C)
        tgt = query_qc.unsqueeze(1).repeat(1, Bm, 1)  # (Nq, Bm, C)
        mem = self.decoder_norm(mem)
        tgt = self.decoder_norm(tgt)
        feats, ws = self.decoder(tgt, mem, trace)
        feats = self.dropout_feas(feats).transpose(0, 1)  # (Bm, Nq, C)
        if trace is not None:
            trace["final_norm"] = feats
        out = self.mlp_head(feats).squeeze(-1)  # (Bm, Nq)
        return out, ws


# ----------------------------------------------------------------------------------------------
# The whole model (keys as CARZeroDQNWOSAGLMLP)
# ----------------------------------------------------------------------------------------------


class CARZeroRef(nn.Module):
    def __init__(self, cfg: CARZeroConfig):
        super().__init__()
        self.cfg = cfg
        self.text_encoder = TextEncoder(cfg.text)
        self.img_encoder = ImageEncoder(cfg.vision)
        self.fusion_module = TQNHead(cfg.head)

    @torch.no_grad()
    def embed_images(self, pixels, trace: Optional[dict] = None):
        return self.img_encoder(pixels, trace)

    @torch.no_grad()
    def embed_texts(self, ids, mask, tokens, trace: Optional[dict] = None):
        return self.text_encoder(ids, mask, tokens, trace)

    @torch.no_grad()
    def score(self, img_g, img_l, sent, words, trace_i2t: Optional[dict] = None, trace_t2i: Optional[dict] = None):
        """spec 5. Returns dict(i2t (B,Q), t2i (Q,B), score (B,Q), attention (B,Q,P))."""
        img_mem = torch.cat([img_g.unsqueeze(1), img_l], dim=1)  # (B, 1+P, C)
        txt_mem = torch.cat([sent.unsqueeze(1), words], dim=1)  # (Q, 1+L, C), zero pads kept
        i2t, ws = self.fusion_module(img_mem, sent, trace_i2t)  # (B, Q)
        t2i, _ = self.fusion_module(txt_mem, img_g, trace_t2i)  # (Q, B)
        score = (i2t + t2i.transpose(0, 1)) / 2
        att = torch.stack([w[:, :, 1:] for w in ws]).mean(0)  # (B, Q, P): heads then layers averaged
        return {"i2t": i2t, "t2i": t2i, "score": score, "attention": att}


def strip_lightning_prefix(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """As the original load_CARZero: key.split('CARZero.')[-1]."""
    return OrderedDict((k.split("CARZero.")[-1], v) for k, v in sd.items())


# ----------------------------------------------------------------------------------------------
# Text cleaning (spec 3.1) and BERT WordPiece tokenizer (HF BertTokenizer semantics)
# ----------------------------------------------------------------------------------------------


_SPLITTER = re.compile(r"[0-9]+\.")
_WORD = re.compile(r"\w+")  # nltk RegexpTokenizer(r"\w+").tokenize == re.findall (UNICODE flag)


def clean_text(t: str) -> str:
    """CARZeroDQNWOSAGLMLP.process_text cleaning, for one text."""
    t = t.replace("\n", " ")
    pieces = _SPLITTER.split(t)
    sents = [s for p in pieces for s in p.split(".")]
    kept = []
    for s in sents:
        s = s.replace("\ufffd\ufffd", " ")
        toks = _WORD.findall(s.lower())
        if len(toks) <= 1:
            continue
        inc = []
        for w in toks:
            w = w.encode("ascii", "ignore").decode("ascii")
            if len(w) > 0:
                inc.append(w)
        kept.append(" ".join(inc))
    return " ".join(kept)


def load_vocab(path: str) -> "OrderedDict[str, int]":
    vocab: "OrderedDict[str, int]" = OrderedDict()
    with open(path, "r", encoding="utf-8") as f:
        for i, line in enumerate(f):
            tok = line.rstrip("\n")
            vocab[tok] = i
    return vocab


def _is_whitespace(ch: str) -> bool:
    if ch in (" ", "\t", "\n", "\r"):
        return True
    return unicodedata.category(ch) == "Zs"


def _is_control(ch: str) -> bool:
    if ch in ("\t", "\n", "\r"):
        return False
    return unicodedata.category(ch).startswith("C")


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    if (33 <= cp <= 47) or (58 <= cp <= 64) or (91 <= cp <= 96) or (123 <= cp <= 126):
        return True
    return unicodedata.category(ch).startswith("P")


def _is_chinese_char(cp: int) -> bool:
    return (
        (0x4E00 <= cp <= 0x9FFF)
        or (0x3400 <= cp <= 0x4DBF)
        or (0x20000 <= cp <= 0x2A6DF)
        or (0x2A700 <= cp <= 0x2B73F)
        or (0x2B740 <= cp <= 0x2B81F)
        or (0x2B820 <= cp <= 0x2CEAF)
        or (0xF900 <= cp <= 0xFAFF)
        or (0x2F800 <= cp <= 0x2FA1F)
    )


class BertWordPieceTokenizer:
    """HF BertTokenizer semantics (BasicTokenizer + WordpieceTokenizer), written from scratch."""

    SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

    def __init__(self, vocab: "OrderedDict[str, int]", do_lower_case: bool = True, strip_accents=None,
                 tokenize_chinese_chars: bool = True, max_input_chars_per_word: int = 100):
        self.vocab = vocab
        self.inv = {i: t for t, i in vocab.items()}
        self.do_lower_case = do_lower_case
        self.strip_accents = strip_accents
        self.tokenize_chinese_chars = tokenize_chinese_chars
        self.max_chars = max_input_chars_per_word
        self.never_split = set(self.SPECIAL)

    @classmethod
    def from_dir(cls, d: str) -> "BertWordPieceTokenizer":
        import os

        vocab = load_vocab(os.path.join(d, "vocab.txt"))
        kw = {}
        p = os.path.join(d, "tokenizer_config.json")
        if os.path.exists(p):
            with open(p) as f:
                tc = json.load(f)
            kw["do_lower_case"] = tc.get("do_lower_case", True)
            kw["strip_accents"] = tc.get("strip_accents", None)
            kw["tokenize_chinese_chars"] = tc.get("tokenize_chinese_chars", True)
        return cls(vocab, **kw)

    # --- BasicTokenizer ---
    def _clean(self, text: str) -> str:
        out = []
        for ch in text:
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD or _is_control(ch):
                continue
            out.append(" " if _is_whitespace(ch) else ch)
        return "".join(out)

    def _chinese(self, text: str) -> str:
        out = []
        for ch in text:
            if _is_chinese_char(ord(ch)):
                out += [" ", ch, " "]
            else:
                out.append(ch)
        return "".join(out)

    @staticmethod
    def _strip_accents(text: str) -> str:
        text = unicodedata.normalize("NFD", text)
        return "".join(ch for ch in text if unicodedata.category(ch) != "Mn")

    @staticmethod
    def _split_punc(text: str) -> List[str]:
        out: List[List[str]] = []
        start_new = True
        for ch in text:
            if _is_punctuation(ch):
                out.append([ch])
                start_new = True
            else:
                if start_new:
                    out.append([])
                start_new = False
                out[-1].append(ch)
        return ["".join(x) for x in out]

    def basic_tokenize(self, text: str) -> List[str]:
        text = self._clean(text)
        if self.tokenize_chinese_chars:
            text = self._chinese(text)
        text = unicodedata.normalize("NFC", text)
        split = []
        for tok in text.strip().split():
            if tok not in self.never_split:
                if self.do_lower_case:
                    tok = tok.lower()
                    if self.strip_accents is not False:
                        tok = self._strip_accents(tok)
                elif self.strip_accents:
                    tok = self._strip_accents(tok)
                split.extend(self._split_punc(tok))
            else:
                split.append(tok)
        return " ".join(split).strip().split()

    # --- WordpieceTokenizer ---
    def wordpiece(self, word: str) -> List[str]:
        chars = list(word)
        if len(chars) > self.max_chars:
            return ["[UNK]"]
        out = []
        start = 0
        while start < len(chars):
            end = len(chars)
            cur = None
            while start < end:
                sub = "".join(chars[start:end])
                if start > 0:
                    sub = "##" + sub
                if sub in self.vocab:
                    cur = sub
                    break
                end -= 1
            if cur is None:
                return ["[UNK]"]
            out.append(cur)
            start = end
        return out

    def tokenize(self, text: str) -> List[str]:
        toks = []
        for w in self.basic_tokenize(text):
            if w in self.never_split:
                toks.append(w)
            else:
                toks.extend(self.wordpiece(w))
        return toks

    def encode(self, text: str, max_length: int = 97) -> dict:
        """tokenizer(text, truncation=True, padding='max_length', max_length=97)."""
        toks = self.tokenize(text)[: max_length - 2]
        toks = ["[CLS]"] + toks + ["[SEP]"]
        n = len(toks)
        toks = toks + ["[PAD]"] * (max_length - n)
        ids = [self.vocab[t] for t in toks]
        mask = [1] * n + [0] * (max_length - n)
        kinds = token_kinds(toks)
        return {"tokens": toks, "ids": ids, "mask": mask, "token_type_ids": [0] * max_length, "kinds": kinds}


def token_kinds(tokens: Sequence[str]) -> List[int]:
    """docs/MODEL-FORMAT.md kinds: 0 word start, 1 '##' continuation, 2 the [SEP], 3 after it."""
    out = []
    seen_sep = False
    for t in tokens:
        if seen_sep:
            out.append(3)
        elif t == "[SEP]":
            out.append(2)
            seen_sep = True
        elif t.startswith("##"):
            out.append(1)
        else:
            out.append(0)
    return out


def encode_prompts(tok: BertWordPieceTokenizer, prompts: "OrderedDict[str, object]", max_length: int = 97):
    """Prompt JSON {class: prompt} or {class: [prompt]} -> per class dict (key order kept).

    With several prompts for one class the original makes one row per prompt; the released prompt
    files have one per class, as have ours.
    """
    rows = []
    for cls, v in prompts.items():
        texts = v if isinstance(v, list) else [v]
        for t in texts:
            c = clean_text(t)
            e = tok.encode(c, max_length)
            e.update({"class": cls, "raw": t, "cleaned": c})
            rows.append(e)
    return rows


# ----------------------------------------------------------------------------------------------
# Image preprocessing (spec 1)
# ----------------------------------------------------------------------------------------------


def resize_and_pad(img: np.ndarray, scale: int = 256) -> np.ndarray:
    """CARZeroDQNWOSAGLMLP._resize_img (float64 arithmetic kept as is)."""
    import cv2

    size = img.shape
    max_dim = max(size)
    max_ind = size.index(max_dim)
    if max_ind == 0:
        wpercent = scale / float(size[0])
        hsize = int((float(size[1]) * float(wpercent)))
        desired = (scale, hsize)
    else:
        hpercent = scale / float(size[1])
        wsize = int((float(size[0]) * float(hpercent)))
        desired = (wsize, scale)
    resized = cv2.resize(img, desired[::-1], interpolation=cv2.INTER_AREA)
    if max_ind == 0:
        pad = scale - resized.shape[1]
        left, right, top, bottom = int(np.floor(pad / 2)), int(np.ceil(pad / 2)), 0, 0
    else:
        pad = scale - resized.shape[0]
        top, bottom, left, right = int(np.floor(pad / 2)), int(np.ceil(pad / 2)), 0, 0
    return np.pad(resized, [(top, bottom), (left, right)], "constant", constant_values=0)


def normalize_crop(padded: np.ndarray, crop: int = 224, mean: float = 0.4978, std: float = 0.2449) -> np.ndarray:
    """CenterCrop + ToTensor + Normalize in float32 as torchvision does: ((u8 / 255) - mean) / std,
    every step rounded to float32. Returns (crop, crop) f32 (one channel; the 3 are equal)."""
    H, W = padded.shape
    top = int(round((H - crop) / 2.0))
    left = int(round((W - crop) / 2.0))
    c = padded[top: top + crop, left: left + crop]
    x = torch.from_numpy(np.ascontiguousarray(c)).to(torch.float32).div(255)
    x = x.sub(torch.tensor(mean, dtype=torch.float32)).div(torch.tensor(std, dtype=torch.float32))
    return x.numpy()


def preprocess_path(path: str, scale: int = 256, crop: int = 224, mean: float = 0.4978, std: float = 0.2449):
    import cv2

    g = cv2.imread(str(path), 0)
    if g is None:
        raise FileNotFoundError(path)
    r = resize_and_pad(g, scale)
    x = normalize_crop(r, crop, mean, std)
    return g, r, x


def to_pixels(xs: Sequence[np.ndarray]) -> torch.Tensor:
    """list of (224,224) f32 -> (B, 3, 224, 224) with 3 equal channels."""
    t = torch.from_numpy(np.stack(xs))
    return t.unsqueeze(1).repeat(1, 3, 1, 1)


# ----------------------------------------------------------------------------------------------
# DICOM to 8-bit (our documented rule, not part of the original which only reads PNG/JPEG)
# ----------------------------------------------------------------------------------------------

DICOM_RULE = {
    "description": (
        "8-bit grey image from a DICOM file (first frame). All arithmetic in IEEE float64, in this "
        "order. 1) raw = stored pixel values as integers (PixelRepresentation 1 = two's complement "
        "signed, sign taken from bit HighBit; BitsStored bits). 2) v = raw * slope + intercept, where "
        "slope = RescaleSlope (0028,1053) or 1 and intercept = RescaleIntercept (0028,1052) or 0. "
        "3) If WindowCenter (0028,1050) and WindowWidth (0028,1051) are both present (first value "
        "when multi-valued) and width >= 1: DICOM PS3.3 C.11.2.1.2.1 linear VOI: "
        "lo = c - 0.5 - (w - 1) / 2; hi = c - 0.5 + (w - 1) / 2; if v <= lo then y = 0 else if v > hi "
        "then y = 255 else y = ((v - (c - 0.5)) / (w - 1) + 0.5) * 255. Otherwise min-max: "
        "mn = min(v), mx = max(v) over the frame; y = (v - mn) / (mx - mn) * 255 if mx > mn else 0. "
        "4) out = clamp(floor(y + 0.5), 0, 255) as uint8. 5) PhotometricInterpretation MONOCHROME1: "
        "out = 255 - out. VOILUTFunction, VOI LUT / Modality LUT sequences are ignored."
    ),
    "formula": {
        "v": "raw * slope + intercept",
        "window": ("v <= c - 0.5 - (w - 1) / 2 ? 0 : v > c - 0.5 + (w - 1) / 2 ? 255 : "
                   "((v - (c - 0.5)) / (w - 1) + 0.5) * 255"),
        "minmax": "mx > mn ? (v - mn) / (mx - mn) * 255 : 0",
        "out": "clamp(floor(y + 0.5), 0, 255)",
        "monochrome1": "255 - out",
    },
}


def _first(v):
    try:
        from pydicom.multival import MultiValue

        if isinstance(v, (MultiValue, list, tuple)):
            return float(v[0])
    except ImportError:
        pass
    return float(v)


def dicom_to_u8(ds) -> np.ndarray:
    raw = ds.pixel_array
    if raw.ndim == 3 and getattr(ds, "NumberOfFrames", 1) not in (None, 1):
        raw = raw[0]
    raw = raw.astype(np.float64)
    slope = float(ds.RescaleSlope) if "RescaleSlope" in ds else 1.0
    intercept = float(ds.RescaleIntercept) if "RescaleIntercept" in ds else 0.0
    v = raw * slope + intercept
    if "WindowCenter" in ds and "WindowWidth" in ds and _first(ds.WindowWidth) >= 1:
        c = _first(ds.WindowCenter)
        w = _first(ds.WindowWidth)
        lo = c - 0.5 - (w - 1) / 2
        hi = c - 0.5 + (w - 1) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            mid = ((v - (c - 0.5)) / (w - 1) + 0.5) * 255
        y = np.where(v <= lo, 0.0, np.where(v > hi, 255.0, mid))
    else:
        mn, mx = v.min(), v.max()
        y = (v - mn) / (mx - mn) * 255 if mx > mn else np.zeros_like(v)
    out = np.clip(np.floor(y + 0.5), 0, 255).astype(np.uint8)
    if str(ds.PhotometricInterpretation) == "MONOCHROME1":
        out = (255 - out).astype(np.uint8)
    return out
