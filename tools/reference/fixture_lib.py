"""Shared fixture generation for make_fixtures.py (tiny, committed) and full_size.py (not committed)."""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from typing import Dict, List, Optional

import numpy as np
import torch

import carzero_ref as R
import ckpt_io as IO

SPECIALS_TINY = ["[PAD]", "[unused1]", "[unused2]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# Words of the tiny vocabulary. Some prompt words are only reachable through '##' pieces, letters
# 'q' and 'z' are left out entirely so that words containing them become [UNK].
TINY_WORDS = """
there is are a an no the of in and with without small large left right lung lungs heart size
normal pleural effusion edema nodule mass pneumonia pneumo ##thorax cardio ##me ##galy ate ##lect
##asis infiltration emphysema fibrosis thickening hernia fracture opacity lesion calcified granuloma
consolidation mild moderate severe bilateral lower upper lobe base bases ##s ##es ##ed ##ing ##ly
seen mm measuring findings acute chest tube line enlarged silhouette stable change unchanged new
evidence of focal airspace disease cm this that may be likely
""".split()


def tiny_vocab() -> List[str]:
    letters = [c for c in "abcdefghijklmnopqrstuvwxyz" if c not in "qz"]
    digits = list("0123456789")
    v = list(SPECIALS_TINY)
    v += letters + ["##" + c for c in letters] + digits + ["##" + d for d in digits] + ["_", ".", ","]
    for w in TINY_WORDS:
        if w not in v:
            v.append(w)
    return v


def full_vocab(size: int = 28996) -> List[str]:
    """A 28996-entry vocab laid out like bert-base-cased: [PAD]=0, [unused1..99], [UNK]=100,
    [CLS]=101, [SEP]=102, [MASK]=103, then characters, words, '##' pieces and filler."""
    v = ["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = [chr(c) for c in range(33, 127)]
    v += chars
    v += ["##" + c for c in chars]
    for w in TINY_WORDS:
        if w not in v:
            v.append(w)
    seen = set(v)
    i = 0
    while len(v) < size:
        w = f"filler{i}" if i % 3 else f"##fill{i}"
        if w not in seen:
            v.append(w)
            seen.add(w)
        i += 1
    return v[:size]


# ----------------------------------------------------------------------------------------------
# Weights
# ----------------------------------------------------------------------------------------------


def init_weights(model: torch.nn.Module, seed: int) -> None:
    """Seeded random weights; LayerNorm weights and biases perturbed too (nothing left at 1/0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if name.endswith("logit_scale"):
                continue
            is_norm = ("norm" in name.lower()) and p.dim() == 1
            if is_norm and leaf == "weight":
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif leaf in ("bias", "in_proj_bias") or (is_norm and leaf == "bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif "embeddings" in name or leaf in ("cls_token", "pos_embed"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:
                fan_in = int(np.prod(p.shape[1:])) if p.dim() > 1 else p.shape[0]
                gain = 1.0
                if "mlp_head" in name:  # ReLU stack: He gain, a larger last layer -> well spread logits
                    gain = np.sqrt(2.0) * (3.0 if p.shape[0] == 1 else 1.0)
                elif "multihead_attn.in_proj" in name:  # sharper cross-attention than uniform
                    gain = 2.0
                p.copy_(gain * torch.randn(p.shape, generator=g) / np.sqrt(fan_in))


# ----------------------------------------------------------------------------------------------
# Synthetic radiograph-like images
# ----------------------------------------------------------------------------------------------


def synth_xray(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    y = y / (h - 1) * 2 - 1
    x = x / (w - 1) * 2 - 1
    body = np.exp(-(((x / 0.9) ** 2 + (y / 1.05) ** 2) ** 4))
    lung = np.zeros_like(x)
    for cx in (-0.42, 0.42):
        lung += np.exp(-((((x - cx) / 0.3) ** 2 + ((y + 0.05) / 0.6) ** 2) ** 3))
    spine = np.exp(-((x / 0.08) ** 2)) * body
    heart = np.exp(-((((x - 0.12) / 0.3) ** 2 + ((y - 0.3) / 0.25) ** 2) ** 2))
    ribs = 0.08 * np.sin(y * 22 + 3 * x ** 2 + rng.uniform(0, 6)) * lung
    img = 0.08 + 0.62 * body - 0.38 * lung + 0.22 * spine + 0.25 * heart + ribs
    img += rng.normal(0, 0.025, size=img.shape)
    return np.clip(img, 0, 1)


def write_raster_images(d: str, small: bool = True) -> List[dict]:
    """Writes the raster test images; returns their descriptions."""
    import cv2
    from PIL import Image

    os.makedirs(d, exist_ok=True)
    out = []

    def add(name, fmt, kind, shape, note=""):
        out.append({"name": name, "file": f"{name}.{fmt}", "format": fmt, "kind": kind,
                    "source_shape": list(shape), "note": note})

    a = synth_xray(196, 147, 1)
    cv2.imwrite(f"{d}/grey8_tall_quirk.png", np.round(a * 255).astype(np.uint8))
    add("grey8_tall_quirk", "png", "8-bit grey PNG", (196, 147),
        "taller, enlarged; int(147 * (256/196)) = 191 although 147*256/196 = 192 exactly (float quirk kept)")

    a = synth_xray(161, 322, 2)
    cv2.imwrite(f"{d}/grey8_wide_quirk.png", np.round(a * 255).astype(np.uint8))
    add("grey8_wide_quirk", "png", "8-bit grey PNG", (161, 322),
        "wider, shrunk; int(161 * (256/322)) = 127 although 161*256/322 = 128 exactly")

    a = synth_xray(300, 233, 3)
    cv2.imwrite(f"{d}/grey8_large.png", np.round(a * 255).astype(np.uint8))
    add("grey8_large", "png", "8-bit grey PNG", (300, 233), "taller, shrunk by a non-integer ratio")

    a = synth_xray(240, 180, 4)
    rng = np.random.default_rng(40)
    v16 = np.clip(np.round(a * 65535) + rng.integers(-200, 200, size=a.shape), 0, 65535).astype(np.uint16)
    cv2.imwrite(f"{d}/grey16_tall.png", v16)
    add("grey16_tall", "png", "16-bit grey PNG", (240, 180), "16-bit samples, enlarged; expect v >> 8")

    a = synth_xray(150, 230, 5)
    rgb = np.stack([a * 0.9, a, np.clip(a * 1.1 + 0.05, 0, 1)], -1)
    rgb[:40, :60] = [1.0, 0.1, 0.2]  # a saturated colour patch (colour-to-grey rule matters here)
    rgb[-30:, -50:] = [0.1, 0.2, 1.0]
    cv2.imwrite(f"{d}/rgb_wide.png", np.round(rgb[..., ::-1] * 255).astype(np.uint8))
    add("rgb_wide", "png", "8-bit RGB PNG", (150, 230), "wider, enlarged; colour -> grey by libpng rgb_to_gray")

    a = synth_xray(200, 200, 6)
    alpha = np.tile(np.linspace(0, 1, 200)[None, :], (200, 1))
    rgba = np.stack([a, a * 0.8, a * 0.6, alpha], -1)
    cv2.imwrite(f"{d}/rgba_square.png", np.round(rgba[..., [2, 1, 0, 3]] * 255).astype(np.uint8))
    add("rgba_square", "png", "8-bit RGBA PNG", (200, 200),
        "square (the 'taller' branch), enlarged; alpha is dropped, not composited")

    a = synth_xray(180, 260, 7)
    pal = Image.fromarray(np.round(np.stack([a, a * 0.95, a * 0.85], -1) * 255).astype(np.uint8), "RGB")
    pal = pal.quantize(colors=64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    pal.save(f"{d}/palette.png")
    add("palette", "png", "palette (8-bit indexed) PNG", (180, 260), "wider than 256, slightly shrunk")

    a = synth_xray(190, 120, 8)
    la = np.stack([np.round(a * 255), np.full_like(a, 200)], -1).astype(np.uint8)
    Image.fromarray(la, "LA").save(f"{d}/grey_alpha.png")
    add("grey_alpha", "png", "8-bit grey+alpha PNG", (190, 120), "taller, enlarged; alpha dropped")

    a = synth_xray(100, 120, 9)
    rgb16 = np.stack([a * 0.9, a, a * 0.8], -1)
    cv2.imwrite(f"{d}/rgb16.png", np.round(rgb16[..., ::-1] * 65535).astype(np.uint16))
    add("rgb16", "png", "16-bit RGB PNG", (100, 120), "wider, enlarged; 16-bit colour")

    a = synth_xray(300, 240, 10)
    cv2.imwrite(f"{d}/grey.jpg", np.round(a * 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 85])
    add("grey", "jpg", "grey (1-component) JPEG", (300, 240), "taller, shrunk")

    a = synth_xray(210, 280, 11)
    col = np.stack([a * 0.85, a, np.clip(a * 1.15, 0, 1)], -1)
    cv2.imwrite(f"{d}/colour.jpg", np.round(col[..., ::-1] * 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 85])
    add("colour", "jpg", "colour (YCbCr 4:2:0) JPEG", (210, 280), "wider, shrunk; grey = decoder's luma output")
    return out


def decoder_rule_check(path: str, decoded: np.ndarray) -> Optional[dict]:
    """Compares cv2's 8-bit grey decode with candidate closed-form rules (for PNG only)."""
    import cv2

    src = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if src is None or not path.endswith(".png"):
        return None
    res = {}
    if src.ndim == 2 and src.dtype == np.uint16:
        res["v >> 8"] = int(np.abs((src >> 8).astype(int) - decoded).max())
        res["round(v * 255 / 65535)"] = int(np.abs(np.round(src * 255 / 65535) - decoded).max())
        return res
    if src.ndim == 3 and src.shape[2] in (3, 4):
        b, g, r = [src[..., i].astype(np.int64) for i in range(3)]
        if src.dtype == np.uint16:
            y16 = (9797 * r + 19234 * g + 3737 * b + 16384) >> 15
            res["((9797 R + 19234 G + 3737 B + 16384) >> 15) >> 8 on 16-bit"] = int(np.abs((y16 >> 8) - decoded).max())
            r8, g8, b8 = r >> 8, g >> 8, b >> 8
            y8 = (9797 * r8 + 19234 * g8 + 3737 * b8) >> 15
            res["(9797 R + 19234 G + 3737 B) >> 15 on v >> 8"] = int(np.abs(y8 - decoded).max())
        else:
            eq = (r == g) & (g == b)
            y = np.where(eq, r, (9797 * r + 19234 * g + 3737 * b) >> 15)
            res["R == G == B ? R : (9797 R + 19234 G + 3737 B) >> 15"] = int(np.abs(y - decoded).max())
            y2 = np.where(eq, r, (9798 * r + 19235 * g + 3735 * b) >> 15)
            res["R == G == B ? R : (9798 R + 19235 G + 3735 B) >> 15"] = int(np.abs(y2 - decoded).max())
        return res
    return None


# ----------------------------------------------------------------------------------------------
# DICOM test files (pydicom)
# ----------------------------------------------------------------------------------------------


def write_dicoms(d: str) -> List[dict]:
    import pydicom
    from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

    os.makedirs(d, exist_ok=True)
    out = []

    def make(name, arr, *, signed, bits_stored, photometric, explicit, slope=None, intercept=None,
             wc=None, ww=None, note=""):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage
        meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[name])
        meta.TransferSyntaxUID = ExplicitVRLittleEndian if explicit else ImplicitVRLittleEndian
        meta.ImplementationClassUID = generate_uid(entropy_srcs=["carzero-fixtures"])
        ds = FileDataset(f"{d}/{name}.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
        ds.is_little_endian = True
        ds.is_implicit_VR = not explicit
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = "DX"
        ds.PatientName = "Synthetic^Phantom"
        ds.PatientID = "CARZERO-FIXTURE"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = photometric
        ds.Rows, ds.Columns = arr.shape
        alloc = 8 if arr.dtype.itemsize == 1 else 16
        ds.BitsAllocated = alloc
        ds.BitsStored = bits_stored
        ds.HighBit = bits_stored - 1
        ds.PixelRepresentation = 1 if signed else 0
        if slope is not None:
            ds.RescaleSlope = slope
        if intercept is not None:
            ds.RescaleIntercept = intercept
        if wc is not None:
            ds.WindowCenter = wc
            ds.WindowWidth = ww
        ds.PixelData = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        ds.save_as(f"{d}/{name}.dcm", write_like_original=False)
        back = pydicom.dcmread(f"{d}/{name}.dcm")
        u8 = R.dicom_to_u8(back)
        out.append({"name": name, "file": f"{name}.dcm", "format": "dcm",
                    "transfer_syntax": "explicit VR little endian" if explicit else "implicit VR little endian",
                    "photometric": photometric, "bits_allocated": alloc, "bits_stored": bits_stored,
                    "pixel_representation": 1 if signed else 0,
                    "rescale_slope": slope, "rescale_intercept": intercept, "window_center": wc,
                    "window_width": ww, "source_shape": list(arr.shape), "note": note, "_u8": u8})

    a = synth_xray(160, 128, 21)
    make("mono2_u12_window", np.round(a * 4095).astype(np.uint16), signed=False, bits_stored=12,
         photometric="MONOCHROME2", explicit=True, slope="1", intercept="-1024", wc="1000", ww="3000",
         note="12 of 16 bits, rescale intercept -1024, window from the file")
    a = synth_xray(150, 200, 22)
    make("mono1_u16_minmax", np.round(a * 60000 + 500).astype(np.uint16), signed=False, bits_stored=16,
         photometric="MONOCHROME1", explicit=False, slope="2.5", intercept="0",
         note="MONOCHROME1 (inverted), no window -> min-max, slope 2.5, implicit VR")
    a = synth_xray(140, 140, 23)
    make("mono2_s16_multiwindow", np.round(a * 3000 - 1000).astype(np.int16), signed=True, bits_stored=16,
         photometric="MONOCHROME2", explicit=True, wc=["300", "40"], ww=["1800", "400"],
         note="signed pixels, no rescale tags, multi-valued window (first value is used)")
    a = synth_xray(130, 100, 24)
    make("mono2_u8_plain", np.round(a * 200 + 20).astype(np.uint8), signed=False, bits_stored=8,
         photometric="MONOCHROME2", explicit=False, note="8-bit, no rescale, no window -> min-max, implicit VR")
    a = synth_xray(120, 170, 25)
    make("mono1_s16_window_slope", np.round(a * 2000 - 700).astype(np.int16), signed=True, bits_stored=16,
         photometric="MONOCHROME1", explicit=True, slope="0.5", intercept="100", wc="250.5", ww="601",
         note="MONOCHROME1, signed, slope 0.5 intercept 100, fractional window centre")
    return out


# ----------------------------------------------------------------------------------------------
# Prompts
# ----------------------------------------------------------------------------------------------


def test_prompts() -> "OrderedDict[str, list]":
    long_text = ("There is a small left pleural effusion with mild bibasilar atelectasis and no "
                 "pneumothorax. " * 6).strip()
    return OrderedDict([
        ("Atelectasis", ["There is atelectasis"]),
        ("Cardiomegaly", ["There is cardiomegaly"]),
        ("Effusion", ["Effusion"]),  # one word -> cleaned to ""
        ("Pleural_Thickening", ["There is pleural_thickening"]),  # '_' kept by \w, split by BERT
        ("Calcified Granuloma", ["There is calcified granuloma"]),
        ("Report", ["1. Small left pleural effusion.\n2. No pneumothorax. Heart size is normal.\n3.Stable"]),
        ("Replacement", ["There is\ufffd\ufffdedema in the lung\ufffdbases"]),
        ("NonAscii", ["Thère is a nodülé in the right lung. Opacité ² 5.5 mm"]),
        ("EmptySentence", ["There is edema. Οίδημα πνεύμονα. No change"]),
        ("Unknown", ["Haze in the xray zone quietly"]),
        ("Digits", ["Nodule measuring 5.5 mm in the right upper lobe, 12 mm"]),
        ("LongWord", ["There is " + "a" * 101 + " and " + "b" * 100]),
        ("Truncated", [long_text]),
        ("Uppercase", ["THERE IS PNEUMONIA IN BOTH LUNGS"]),
    ])


def clean_cases() -> List[str]:
    return [
        "", "Cardiomegaly", "There is atelectasis", "There is atelectasis.", "  there   is\tedema  ",
        "1. Effusion. 2. There is edema", "No acute findings.\nNo pneumothorax", "a.b.c", "10.5 cm mass is seen",
        "mass 3.2cm in size", "x\ufffd\ufffdy z", "x\ufffdy", "naïve façade", "İstanbul lung", "ﬁbrosis noted",
        "Ｆｕｌｌｗｉｄｔｈ text", "数字 肺 lung opacity", "pleural_thickening_right side", "__ __", "ß straße",
        "edema;effusion,opacity", "2.There is 3.mass", "Α Β", "ok ½ ²", "There is\u00a0edema",
        "nai\u0308ve lungs",  # decomposed accent: U+0308 is not \w -> splits the word
        "\u216b edema",  # ROMAN NUMERAL TWELVE is \w (numeric): counts as a token, then stripped
        "edema \u0663",  # ARABIC-INDIC DIGIT THREE is \w
        "There is edema.. .No change",
    ]


def raw_tokenizer_cases() -> List[str]:
    """Tokenizer (not cleaning) on raw strings: HF BertTokenizer semantics as re-implemented here."""
    return ["There is Edema, and pleural_effusion!", "naïve CAFÉ", "肺 lung", "a\u0000b\ufffdc\u200bd",
            "[CLS] is special", "x-ray ##s", "tab\there\nnewline"]


# ----------------------------------------------------------------------------------------------
# Binary writing helpers
# ----------------------------------------------------------------------------------------------

_DT = {np.float32: "f32", np.uint8: "u8", np.int32: "i32", np.int64: "i64", np.float64: "f64"}


def write_bin(d: str, rel: str, arr: np.ndarray, index: dict, key: str, extra: Optional[dict] = None) -> dict:
    arr = np.ascontiguousarray(arr)
    dt = _DT[arr.dtype.type]
    path = os.path.join(d, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    arr.astype(arr.dtype.newbyteorder("<")).tofile(path)
    ent = {"file": rel, "dtype": dt, "shape": list(arr.shape)}
    if extra:
        ent.update(extra)
    index[key] = ent
    return ent


def f32(t) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu().numpy()
    return np.asarray(t, dtype=np.float32)


def dump_json(path: str, obj) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, ensure_ascii=False)
        f.write("\n")
