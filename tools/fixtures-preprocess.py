#!/usr/bin/python3
"""Randomized preprocessing parity fixtures: the original CARZero input pipeline, run by OpenCV.

Run with Debian's python (python3-opencv 4.6, python3-torch): /usr/bin/python3 tools/fixtures-preprocess.py
Writes test/fixtures/preprocess/ (read by test/preprocess-parity.test.ts):
  src/NNN-<format>-<w>x<h>.<ext>  the input files, >= 200 of them, sizes chosen to hit the layout's
                                edge cases: squares whose short side maps to 255 (49 x 49, 1745 x 1745,
                                ...), non-square sizes that map to 255 or to 1 in both orientations,
                                odd and even pads, enlargements, exact 256 sides, random sizes, a few
                                full-size ones; formats 8/16-bit grey PNG, colour PNG, grey and colour
                                (4:2:0, 4:4:4) baseline JPEG, grey and colour progressive JPEG
  expect.png                    8-bit grey, 224 wide, the cases' 224 x 224 model inputs before normalisation
                                stacked in index order (cv2.imread(p, 0) -> resize_img -> pad -> crop)
  index.json                    the cases (file, size, the reference's resized size and pad offsets),
                                and the normalisation table: float32 (ToTensor + Normalize, in torch)
                                of each grey level 0..255
  layout.json                   the original's resized size over every W x H in 1..4096 (both
                                orientations), stored as the exceptions to exact integer floor(s * 256 / L)
                                (the float product int(s * (256 / L)) lands below an exact integer)

The pipeline transcribed from the original (CARZero/datasets, the zero-shot path): cv2.imread(path, 0);
resize_img(img, 256): the longer side to 256, the other int(side * (256 / longer)), cv2.INTER_AREA,
zero pad floor(pad / 2) before and ceil(pad / 2) after; torchvision CenterCrop(224) (offset
int(round(16.0)) = 16), ToTensor (/255), Normalize(0.4978, 0.2449); the three channels are equal.
"""
import json
import os

import sys

import cv2
import numpy as np
import torch
from PIL import Image

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference"))
from carzero_ref import resize_and_pad  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "test", "fixtures", "preprocess")
SRC = os.path.join(OUT, "src")
SCALE, CROP = 256, 224
rng = np.random.default_rng(20261207)


def resize_img(img, scale=SCALE):
    """The original resize_img (tools/reference/carzero_ref.py, the project's transcription), with the
    layout it produced: the resized size and the zero pad before it."""
    padded = resize_and_pad(img, scale)
    w, h = resized_short(img.shape[1], img.shape[0], scale)
    layout = {"width": int(w), "height": int(h), "left": (scale - w) // 2, "top": (scale - h) // 2}
    return padded, layout


def resized_short(w, h, scale=SCALE):
    """The size resize_img would give, without resizing (0 on a side means cv2 would refuse)."""
    if h >= w:
        return int(float(w) * float(scale / float(h))), scale
    return scale, int(float(h) * float(scale / float(w)))


def normalise_table():
    """torchvision ToTensor + Normalize on the grey levels 0..255, float32 as torch computes it."""
    ramp = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 256)
    x = ramp.to(dtype=torch.get_default_dtype()).div(255)
    mean = torch.as_tensor([0.4978], dtype=x.dtype).view(-1, 1, 1)
    std = torch.as_tensor([0.2449], dtype=x.dtype).view(-1, 1, 1)
    y = x.sub(mean).div(std)
    return [float(v) for v in y.flatten().tolist()]


def content(h, w, ch, bits, kind):
    """A chest-film-like test image: smooth body, rib-like bands, sharp-edged blocks, some noise."""
    top = (1 << bits) - 1
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    yn, xn = y / max(h, 1), x / max(w, 1)
    planes = []
    for c in range(ch):
        body = 0.45 + 0.3 * np.exp(-(((xn - 0.5) / 0.35) ** 2 + ((yn - 0.55) / 0.45) ** 2))
        period = rng.uniform(0.04, 0.12)
        ribs = 0.08 * np.sin(2 * np.pi * (yn + 0.2 * np.abs(xn - 0.5)) / period + c)
        a = body + ribs
        for _ in range(int(rng.integers(1, 4))):  # sharp-edged blocks: INTER_AREA's partial cells
            y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
            y1, x1 = y0 + int(rng.integers(1, max(2, h // 3))), x0 + int(rng.integers(1, max(2, w // 3)))
            a[y0:y1, x0:x1] += rng.uniform(-0.3, 0.3)
        a = a * top
        if kind == "noisy":  # small images: dense noise
            a += rng.normal(0, 0.02 * top, (h, w))
        else:  # larger ones: a coarse quantised texture (compresses, still exercises the rounding)
            a += (np.floor(xn * 37) % 3 - 1) * (top / 255.0) * 3 + (np.floor(yn * 23) % 2) * (top / 255.0) * 2
        planes.append(a)
    a = np.stack(planes, -1) if ch > 1 else planes[0]
    if bits > 8 and kind != "noisy":
        # a 16-bit film: the high byte carries the picture, the low byte a slow ramp (so the 16 -> 8 bit
        # rounding meets every remainder) that PNG's filters compress, unlike full-depth noise
        hi = np.clip(np.rint(a / 257.0), 0, 255)
        lo = (x * 5 + y * 3).astype(np.int64) % 256
        if ch > 1:
            lo = lo[..., None]
        return (hi * 256 + lo).astype(np.uint16)
    return np.clip(np.rint(a), 0, top).astype(np.uint16 if bits > 8 else np.uint8)


FORMATS = ["png8", "png16", "png-rgb", "jpg-grey", "jpg-420", "jpg-444", "jpg-grey-prog", "jpg-colour-prog"]


def write(path_noext, fmt, w, h, kind):
    if fmt == "png8":
        img, ext = content(h, w, 1, 8, kind), "png"
        cv2.imwrite(path_noext + ".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    elif fmt == "png16":
        img, ext = content(h, w, 1, 16, kind), "png"
        cv2.imwrite(path_noext + ".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    elif fmt == "png-rgb":
        img, ext = content(h, w, 3, 8, kind), "png"
        cv2.imwrite(path_noext + ".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    else:
        ext = "jpg"
        grey = fmt in ("jpg-grey", "jpg-grey-prog")
        img = content(h, w, 1 if grey else 3, 8, kind)
        pil = Image.fromarray(img if grey else img[:, :, ::-1].copy())
        opts = {"quality": int(rng.integers(60, 92))}
        if fmt == "jpg-420":
            opts["subsampling"] = 2
        if fmt in ("jpg-444", "jpg-colour-prog"):
            opts["subsampling"] = 0 if fmt == "jpg-444" else 2
        if fmt.endswith("prog"):
            opts["progressive"] = True
        pil.save(path_noext + ".jpg", **opts)
    return ext


def sizes():
    """(w, h, why) for every case."""
    out = []
    squares255 = [L for L in range(1, 520) if resized_short(L, L)[0] == 255]
    for L in squares255[:24]:
        out.append((L, L, "square, short side 255"))
    for L in (1745, 2010):
        out.append((L, L, "full-size square, short side 255"))
    for L in (1, 2, 3, 16, 100, 224, 255, 256, 257, 300, 512, 640):
        out.append((L, L, "square"))
    # short side 255 (and 254, 253: even and odd pads), both orientations
    for target, n in ((255, 12), (254, 4), (253, 4), (128, 3), (2, 4), (3, 4)):
        for _ in range(n):
            L = int(rng.integers(260, 700))
            cands = [s for s in range(1, L + 1) if int(float(s) * float(SCALE / float(L))) == target]
            s = int(rng.choice(cands))
            out.append((s, L, "portrait, short side %d" % target))
            L = int(rng.integers(260, 700))
            cands = [s for s in range(1, L + 1) if int(float(s) * float(SCALE / float(L))) == target]
            s = int(rng.choice(cands))
            out.append((L, s, "landscape, short side %d" % target))
    # short side 1, both orientations
    for L, s in ((256, 1), (300, 2), (511, 2), (700, 3), (1023, 4), (1600, 7)):
        assert resized_short(s, L)[0] == 1, (L, s)
        out.append((s, L, "portrait, short side 1"))
        out.append((L, s, "landscape, short side 1"))
    # exact 256 long side, enlargements, small oddities
    for w, h in ((256, 100), (100, 256), (256, 255), (255, 256), (255, 254), (5, 3), (3, 5), (1, 2), (2, 1),
                 (37, 200), (200, 37), (129, 130), (250, 180), (180, 250)):
        out.append((w, h, "small or exact"))
    # random sizes
    while len(out) < 206:
        w, h = (int(v) for v in np.minimum(np.rint(rng.lognormal(5.3, 0.8, 2)), 1200).clip(1))
        if min(resized_short(w, h)) >= 1:
            out.append((w, h, "random"))
    # full-size stand-ins
    for w, h in ((2048, 2500), (2500, 2048)):
        out.append((w, h, "full size"))
    for w, h, why in out:
        assert min(resized_short(w, h)) >= 1, (w, h, why)
    return out


def layout_exceptions():
    """Every (long, short) in 1..4096 where the original's float arithmetic differs from exact floor."""
    exc = []
    for L in range(1, 4097):
        s = np.arange(1, L + 1, dtype=np.int64)
        flt = (s.astype(np.float64) * np.float64(float(SCALE / float(L)))).astype(np.int64)  # int() truncates
        exact = (s * SCALE) // L
        bad = np.nonzero(flt != exact)[0]
        for i in bad:
            exc.append([L, int(s[i]), int(flt[i])])
    # cross-check a sample against the original's output on real arrays, both orientations
    for _ in range(300):
        w, h = int(rng.integers(1, 4097)), int(rng.integers(1, 4097))
        rw, rh = resized_short(w, h)
        if min(rw, rh) < 1:
            continue
        # where the original actually puts a white image of this size: the non-zero box of its output
        padded = resize_and_pad(np.full((h, w), 255, np.uint8))
        ys, xs = np.nonzero(padded)
        box = (int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1), int(xs.min()), int(ys.min()))
        assert box == (rw, rh, (SCALE - rw) // 2, (SCALE - rh) // 2), (w, h, box)
    return exc


def main():
    os.makedirs(SRC, exist_ok=True)
    for f in os.listdir(SRC):
        os.remove(os.path.join(SRC, f))
    cases, crops = [], []
    for i, (w, h, why) in enumerate(sizes()):
        fmt = FORMATS[i % len(FORMATS)]
        big = w * h > 1_000_000
        if big and fmt in ("png16", "png-rgb"):
            fmt = "png8"  # keep the committed files small
        if w * h > 4_500_000:
            fmt = "jpg-grey"
        kind = "noisy" if w * h <= 12_000 else "smooth"
        name = "%03d-%s-%dx%d" % (i, fmt, w, h)
        ext = write(os.path.join(SRC, name), fmt, w, h, kind)
        rel = "src/%s.%s" % (name, ext)
        dec = cv2.imread(os.path.join(OUT, rel), 0)
        assert dec is not None and dec.shape == (h, w), rel
        padded, lay = resize_img(dec)
        off = int(round((SCALE - CROP) / 2.0))
        crop = padded[off:off + CROP, off:off + CROP]
        assert crop.shape == (CROP, CROP) and crop.dtype == np.uint8
        crops.append(crop)
        cases.append({"file": rel, "format": fmt, "width": w, "height": h, "why": why, "resized": lay})
    cv2.imwrite(os.path.join(OUT, "expect.png"), np.concatenate(crops, 0), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    with open(os.path.join(OUT, "index.json"), "w") as f:
        json.dump({"generator": "tools/fixtures-preprocess.py", "opencv": cv2.__version__, "torch": torch.__version__,
                   "scale": SCALE, "crop": CROP,
                   "normalise": {"mean": 0.4978, "std": 0.2449, "table": normalise_table()},
                   "cases": cases}, f, indent=1)
        f.write("\n")
    exc = layout_exceptions()
    with open(os.path.join(OUT, "layout.json"), "w") as f:
        json.dump({"generator": "tools/fixtures-preprocess.py", "scale": SCALE, "max_side": 4096,
                   "rule": ("short side = int(float(s) * float(256 / float(L))) "
                            "for the longer side L (height when equal)"),
                   "exceptions_to_exact_floor": exc}, f)
        f.write("\n")
    print("%d cases, %d layout exceptions" % (len(cases), len(exc)))


if __name__ == "__main__":
    main()
