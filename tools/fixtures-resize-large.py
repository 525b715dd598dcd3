#!/usr/bin/python3
"""Large INTER_AREA fixtures for the native resize (native/tests/image/test_resize.cpp).

Run with Debian's OpenCV 4.6 (the one the fixtures pin):
    /usr/bin/python3 tools/fixtures-resize-large.py            # writes test/fixtures/image/resize-large.bin
    /usr/bin/python3 tools/fixtures-resize-large.py --bench    # times cv2 on the bench image

The source images are not stored: each is a deterministic integer formula of (x, y, w, h, seed)
that the C++ test recomputes (see `source`; keep the two in step). Only the sizes and cv2's
outputs are stored, so the file stays small while the sources reach 4096x4096.

resize-large.bin: per case, in order, u32 LE w, h, dw, dh, then dw*dh bytes of
cv2.resize(source(w, h, seed), (dw, dh), interpolation=cv2.INTER_AREA). The seed of a case is its
0-based index in the file.
"""
import os
import struct
import sys
import time

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "test", "fixtures", "image", "resize-large.bin")


def source(w, h, seed):
    """uint8 (h, w): a gradient, sharp-edged blocks and a hash-like noise term, wrapped to 8 bits.

    All arithmetic is unsigned 32-bit with wrap-around (numpy uint32), reproducible in C++:
      grad  = (x * 200) / w + (y * 55) / h                      (integer division)
      block = 64 if (x / 37 + y / 23 + seed) % 3 == 0 else 0
      hash  = x * 73856093 ^ y * 19349663 ^ seed * 83492791;  hash ^= hash >> 13;
              hash *= 0x5bd1e995;  hash ^= hash >> 15
      value = (grad + block + (hash & mask)) & 255,  mask = 255 for an odd seed, else 31
    Full-range noise on odd seeds makes the sums land near rounding ties often enough that a
    fused multiply-add in the float path changes an output byte (checked with an FMA build).
    """
    x = np.arange(w, dtype=np.uint32)[None, :]
    y = np.arange(h, dtype=np.uint32)[:, None]
    s = np.uint32(seed)
    grad = (x * np.uint32(200)) // np.uint32(w) + (y * np.uint32(55)) // np.uint32(h)
    block = np.where((x // np.uint32(37) + y // np.uint32(23) + s) % np.uint32(3) == 0,
                     np.uint32(64), np.uint32(0))
    hsh = (x * np.uint32(73856093)) ^ (y * np.uint32(19349663)) ^ (s * np.uint32(83492791))
    hsh = hsh ^ (hsh >> np.uint32(13))
    hsh = hsh * np.uint32(0x5BD1E995)
    hsh = hsh ^ (hsh >> np.uint32(15))
    noise_mask = np.uint32(255) if seed % 2 == 1 else np.uint32(31)
    v = (grad + block + (hsh & noise_mask)) & np.uint32(255)
    return np.ascontiguousarray(v.astype(np.uint8))


def carzero_size(w, h, scale=256):
    """resize_img's resized (width, height): longer side -> scale, the other int(side * (scale / longer))."""
    if h >= w:
        return int(w * (scale / h)), scale
    return scale, int(h * (scale / w))


# (w, h, dw, dh); None for dw/dh means CARZero's own size for that source.
CASES = [
    (2048, 2500, None, None),  # 209x256: the common portrait CXR, general area path
    (2500, 2048, None, None),  # 256x209: landscape
    (1745, 1745, None, None),  # 255x256: a square whose double arithmetic gives 255
    (4096, 4096, None, None),  # 256x256: integer factor 16 (fast area, float scale)
    (512, 512, None, None),    # 256x256: the 2x2 fast path with (a+b+c+d+2)>>2
    (1024, 1024, None, None),  # 256x256: integer factor 4
    (768, 96, None, None),     # 256x32: integer factor 3
    (100, 80, None, None),     # 256x204: enlarging, linear-like fixed point path
    (300, 299, None, None),    # 256x255: a shrink by just over 1
    (3000, 2000, None, None),  # 256x170
    (257, 3001, None, None),   # 21x256: narrow and tall
    (4095, 17, None, None),    # 256x1: one output row
    (640, 480, None, None),    # 256x192: factor 2.5
    (2, 3, None, None),        # 170x256: a tiny image enlarged
    (1, 1, None, None),        # 256x256 from one pixel
    (2049, 2047, None, None),  # odd sizes close to 2048
    (600, 50, 256, 120),       # mixed: x shrinks, y grows (not CARZero's, but a resize path)
    (37, 900, 90, 100),        # mixed the other way
    (2000, 3000, 255, 256),    # a non-CARZero target near 256
]


def cases():
    for i, (w, h, dw, dh) in enumerate(CASES):
        if dw is None:
            dw, dh = carzero_size(w, h)
        yield i, w, h, dw, dh


def write():
    cv2.setNumThreads(1)
    total = 0
    with open(OUT, "wb") as f:
        for seed, w, h, dw, dh in cases():
            img = source(w, h, seed)
            r = cv2.resize(img, (dw, dh), interpolation=cv2.INTER_AREA)
            assert r.shape == (dh, dw) and r.dtype == np.uint8
            f.write(struct.pack("<4I", w, h, dw, dh) + r.tobytes())
            total += 16 + dw * dh
            print(f"{w}x{h} -> {dw}x{dh}")
    print(f"wrote {OUT} ({total} bytes, OpenCV {cv2.__version__})")


def bench(runs=15):
    """cv2's single-thread time on the image bench_image uses (source(2048, 2500, 0))."""
    cv2.setNumThreads(1)
    img = source(2048, 2500, 0)
    dw, dh = carzero_size(2048, 2500)
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        cv2.resize(img, (dw, dh), interpolation=cv2.INTER_AREA)
        ts.append(time.perf_counter() - t)
    ts.sort()
    print(f"cv2 {cv2.__version__} resize INTER_AREA 2048x2500 -> {dw}x{dh}, 1 thread: "
          f"median {ts[len(ts) // 2] * 1e3:.3f} ms, min {ts[0] * 1e3:.3f} ms ({runs} runs)")


if __name__ == "__main__":
    if "--bench" in sys.argv[1:]:
        bench()
    else:
        write()
