#!/usr/bin/python3
"""The decode benchmark's peer (bench/decode.ts): OpenCV doing CARZero's input pipeline.

  /usr/bin/python3 bench/peers/cv2_decode.py make <dir>          writes the stand-in files
  /usr/bin/python3 bench/peers/cv2_decode.py time <reps> <file>... prints JSON {file: median ms}

`make`: chest-film-like stand-ins (smooth body, rib bands, sharp edges, film grain) at 2048 x 2500
as 8-bit PNG, 16-bit PNG and JPEG q95, and the same content at 256 x 256 (PNG 8-bit and JPEG).
`time`: per file, the median of <reps> runs (after one warm-up) of cv2.imread(p, 0) + the
original resize_img (INTER_AREA to 256 + pad) + the centre crop + float normalisation, on one
thread (cv2.setNumThreads(1)); the same work the package's feed does per image.
"""
import json
import os
import sys
import time

import cv2
import numpy as np


def film(h, w, bits, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    yn, xn = y / h, x / w
    a = 0.35 + 0.4 * np.exp(-(((xn - 0.5) / 0.4) ** 2 + ((yn - 0.55) / 0.5) ** 2))
    a += 0.06 * np.sin(2 * np.pi * (yn + 0.25 * np.abs(xn - 0.5)) / 0.07)
    a[int(h * 0.6):int(h * 0.7), int(w * 0.2):int(w * 0.3)] += 0.2
    a += rng.normal(0, 0.012, (h, w)).astype(np.float32)  # film grain: real radiographs are noisy
    top = (1 << bits) - 1
    return np.clip(np.rint(a * top), 0, top).astype(np.uint16 if bits > 8 else np.uint8)


def make(out):
    os.makedirs(out, exist_ok=True)
    big8, big16 = film(2500, 2048, 8, 1), film(2500, 2048, 16, 2)
    small = cv2.resize(big8, (256, 256), interpolation=cv2.INTER_AREA)
    files = {
        "png8-2048x2500.png": lambda p: cv2.imwrite(p, big8),
        "png16-2048x2500.png": lambda p: cv2.imwrite(p, big16),
        "jpeg95-2048x2500.jpg": lambda p: cv2.imwrite(p, big8, [cv2.IMWRITE_JPEG_QUALITY, 95]),
        "png8-256x256.png": lambda p: cv2.imwrite(p, small),
        "png16-256x256.png": lambda p: cv2.imwrite(p, cv2.resize(big16, (256, 256), interpolation=cv2.INTER_AREA)),
        "jpeg95-256x256.jpg": lambda p: cv2.imwrite(p, small, [cv2.IMWRITE_JPEG_QUALITY, 95]),
    }
    for name, write in files.items():
        p = os.path.join(out, name)
        if not os.path.exists(p):
            write(p)


def resize_img(img, scale=256):
    size = img.shape
    max_ind = size.index(max(size))
    if max_ind == 0:
        desired = (scale, int(float(size[1]) * float(scale / float(size[0]))))
    else:
        desired = (int(float(size[0]) * float(scale / float(size[1]))), scale)
    r = cv2.resize(img, desired[::-1], interpolation=cv2.INTER_AREA)
    if max_ind == 0:
        pad = scale - r.shape[1]
        return np.pad(r, [(0, 0), (pad // 2, pad - pad // 2)], "constant")
    pad = scale - r.shape[0]
    return np.pad(r, [(pad // 2, pad - pad // 2), (0, 0)], "constant")


def pipeline(path):
    img = cv2.imread(path, 0)
    crop = resize_img(img)[16:240, 16:240]
    return (crop.astype(np.float32) / 255.0 - 0.4978) / 0.2449


def time_files(reps, files):
    cv2.setNumThreads(1)
    out = {}
    for f in files:
        pipeline(f)
        ts = []
        for _ in range(reps):
            t = time.perf_counter()
            pipeline(f)
            ts.append((time.perf_counter() - t) * 1000)
        out[f] = float(np.median(ts))
    print(json.dumps({"opencv": cv2.__version__, "ms": out}))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2])
    else:
        time_files(int(sys.argv[2]), sys.argv[3:])
