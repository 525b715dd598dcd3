#!/usr/bin/python3
"""Image fixtures for test/image.test.ts, made with OpenCV (Debian python3-opencv 4.6), PIL and pydicom.

Run with Debian's python: /usr/bin/python3 tools/fixtures-image.py
Writes test/fixtures/image/:
  src/<name>.<ext>          input files (PNG 1/2/4/8/16-bit grey, RGB(A), palette, grey+alpha, tRNS,
                            gAMA; JPEG grey/colour/progressive/EXIF-rotated; DICOM variants; corrupt files)
  expect/<name>.decoded.png cv2.imread(src, 0) (for DICOM: the windowing rule below, in numpy)
  expect/<name>.padded.png  CARZero's resize_img(decoded, 256): INTER_AREA + zero pad (spec 1.2)
  resize.bin                random INTER_AREA cases: per case u32 LE w, h, dw, dh, src (w*h), cv2 dst
  index.json                the list of cases, with the error expected for the bad files
DICOM rule (src/image/dicom.ts): y = x * slope + intercept (float64); window (c, w) from the file's
first WindowCenter/WindowWidth, else c = (min+max)/2, w = max-min over y; then the DICOM linear VOI
function (PS3.3 C.11.2.1.2.1) onto 0..255 (min-max: (y-min)/(max-min)*255): y <= c-0.5-(w-1)/2 -> 0,
y > c-0.5+(w-1)/2 -> 255, else ((y-(c-0.5))/(w-1)+0.5)*255, rounded half up (floor(v+0.5)); min-max of
a constant image gives 0; MONOCHROME1 is inverted (255 - v) after windowing.
"""
import io
import json
import os
import struct
import zlib

import cv2
import numpy as np
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "test", "fixtures", "image")
SRC = os.path.join(OUT, "src")
EXP = os.path.join(OUT, "expect")
rng = np.random.default_rng(20240601)


def smooth(h, w, ch=1, noise=2.0, bits=8):
    y, x = np.mgrid[0:h, 0:w]
    top = (1 << bits) - 1
    planes = []
    for c in range(ch):
        base = 0.5 + 0.35 * np.sin(x / (9.0 + 3 * c)) * np.cos(y / (13.0 + c)) + 0.1 * (x / w - y / h)
        planes.append(base * top + rng.normal(0, noise * top / 255, (h, w)))
    a = np.stack(planes, -1) if ch > 1 else planes[0]
    return np.clip(np.rint(a), 0, top).astype(np.uint16 if bits > 8 else np.uint8)


def resize_img(img, scale=256):
    """CARZero's resize_img (inference), transcribed."""
    size = img.shape
    max_dim = max(size)
    max_ind = size.index(max_dim)
    if max_ind == 0:
        wpercent = scale / float(size[0])
        hsize = int((float(size[1]) * float(wpercent)))
        desireable_size = (scale, hsize)
    else:
        hpercent = scale / float(size[1])
        wsize = int((float(size[0]) * float(hpercent)))
        desireable_size = (wsize, scale)
    resized = cv2.resize(img, desireable_size[::-1], interpolation=cv2.INTER_AREA)
    if max_ind == 0:
        pad = scale - resized.shape[1]
        top, bottom, left, right = 0, 0, int(np.floor(pad / 2)), int(np.ceil(pad / 2))
    else:
        pad = scale - resized.shape[0]
        top, bottom, left, right = int(np.floor(pad / 2)), int(np.ceil(pad / 2)), 0, 0
    return np.pad(resized, [(top, bottom), (left, right)], "constant", constant_values=0)


# ---- a minimal PNG writer for the types PIL/cv2 do not write ----
def png_chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def write_png(path, rows_bytes, w, h, depth, ctype, extra=b"", palette=None):
    raw = b"".join(b"\x00" + r for r in rows_bytes)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0))
    data += extra
    if palette is not None:
        data += png_chunk(b"PLTE", palette)
    data += png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(b"IEND", b"")
    open(path, "wb").write(data)


def pack_bits(vals, depth):
    out, acc, n = bytearray(), 0, 0
    for v in vals:
        acc = (acc << depth) | int(v)
        n += depth
        if n == 8:
            out.append(acc)
            acc, n = 0, 0
    if n:
        out.append(acc << (8 - n))
    return bytes(out)


# ---- DICOM ----
def window_u8(y, center, width):
    c, w = float(center), float(width)
    lo, hi = c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2
    v = ((y - (c - 0.5)) / (w - 1) + 0.5) * 255 if w > 1 else np.zeros_like(y)
    v = np.where(y <= lo, 0.0, np.where(y > hi, 255.0, v))
    return np.clip(np.floor(v + 0.5), 0, 255).astype(np.uint8)


def dicom_expected(ds):
    x = ds.pixel_array.astype(np.float64)
    slope = float(getattr(ds, "RescaleSlope", 1) or 1)
    icpt = float(getattr(ds, "RescaleIntercept", 0) or 0)
    y = x * slope + icpt
    if "WindowCenter" in ds and "WindowWidth" in ds:
        wc, ww = ds.WindowCenter, ds.WindowWidth
        c = float(wc[0] if hasattr(wc, "__len__") and not isinstance(wc, str) else wc)
        w = float(ww[0] if hasattr(ww, "__len__") and not isinstance(ww, str) else ww)
        out = window_u8(y, c, w)
    else:
        mn, mx = y.min(), y.max()
        out = (np.zeros(y.shape, np.uint8) if mx == mn
               else np.clip(np.floor((y - mn) / (mx - mn) * 255.0 + 0.5), 0, 255).astype(np.uint8))
    if ds.PhotometricInterpretation == "MONOCHROME1":
        out = 255 - out
    return out


def write_dicom(path, arr, *, explicit=True, big=False, signed=False, mono1=False, slope=None,
                intercept=None, window=None, ts=None, preamble=True):
    import pydicom
    from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = "1.2.3.4.5.6.7.8.9"
    tsu = ts or (ExplicitVRBigEndian if big else ExplicitVRLittleEndian if explicit else ImplicitVRLittleEndian)
    meta.TransferSyntaxUID = tsu
    ds = FileDataset(path, {}, file_meta=meta, preamble=b"\0" * 128 if preamble else None)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Test^Fixture"
    ds.Modality = "DX"
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if mono1 else "MONOCHROME2"
    bits = arr.dtype.itemsize * 8
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 1 if signed else 0
    if slope is not None:
        ds.RescaleSlope = slope
    if intercept is not None:
        ds.RescaleIntercept = intercept
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.is_little_endian = not big
    ds.is_implicit_VR = not explicit
    data = arr.astype(arr.dtype.newbyteorder(">" if big else "<")).tobytes()
    if ts is not None:  # compressed transfer syntax: encapsulated fragments (content irrelevant here)
        from pydicom.encaps import encapsulate
        ds.PixelData = encapsulate([b"\xff\xd8\xff\xd9"])
        ds["PixelData"].VR = "OB"
    else:
        ds.PixelData = data
        ds["PixelData"].VR = "OW" if bits == 16 else "OB"
    ds.save_as(path, write_like_original=not preamble)
    return ds


def main():
    os.makedirs(SRC, exist_ok=True)
    os.makedirs(EXP, exist_ok=True)
    cases = []

    def add(name, ext, kind, expect_from_cv2=True, dicom=None, error=None):
        path = os.path.join(SRC, name + "." + ext)
        entry = {"name": name, "file": "src/%s.%s" % (name, ext), "kind": kind}
        if error is not None:
            entry["error"] = error
        else:
            dec = cv2.imread(path, 0) if expect_from_cv2 else dicom
            assert dec is not None, name
            cv2.imwrite(os.path.join(EXP, name + ".decoded.png"), dec)
            cv2.imwrite(os.path.join(EXP, name + ".padded.png"), resize_img(dec))
            entry.update({"width": int(dec.shape[1]), "height": int(dec.shape[0]),
                          "decoded": "expect/%s.decoded.png" % name, "padded": "expect/%s.padded.png" % name})
        cases.append(entry)

    # PNG
    cv2.imwrite(os.path.join(SRC, "grey8-landscape.png"), smooth(200, 300))          # shrink, non-integer
    add("grey8-landscape", "png", "png")
    cv2.imwrite(os.path.join(SRC, "grey16-portrait.png"), smooth(240, 180, bits=16))  # enlarge, 16-bit
    add("grey16-portrait", "png", "png")
    cv2.imwrite(os.path.join(SRC, "grey8-512.png"), smooth(512, 512, noise=0.7))       # 2x2 fast area
    add("grey8-512", "png", "png")
    cv2.imwrite(os.path.join(SRC, "grey8-768x96.png"), smooth(96, 768, noise=0.7))   # 3x3 fast area
    add("grey8-768x96", "png", "png")
    rgb = smooth(150, 170, ch=3, noise=20)
    cv2.imwrite(os.path.join(SRC, "rgb8.png"), rgb)
    add("rgb8", "png", "png")
    cv2.imwrite(os.path.join(SRC, "rgb16.png"), smooth(70, 90, ch=3, noise=3000, bits=16))
    add("rgb16", "png", "png")
    rgba = np.dstack([rgb, smooth(150, 170)])
    cv2.imwrite(os.path.join(SRC, "rgba8.png"), rgba)
    add("rgba8", "png", "png")
    cv2.imwrite(os.path.join(SRC, "rgba16.png"), np.dstack([smooth(60, 50, ch=3, bits=16), smooth(60, 50, bits=16)]))
    add("rgba16", "png", "png")
    Image.fromarray(np.dstack([smooth(80, 60), smooth(80, 60)]), "LA").save(os.path.join(SRC, "grey-alpha.png"))
    add("grey-alpha", "png", "png")
    Image.fromarray(rgb[:, :, ::-1].copy()).convert("P", palette=Image.ADAPTIVE, colors=200).save(
        os.path.join(SRC, "palette8.png"), transparency=3)
    add("palette8", "png", "png")
    Image.fromarray(rgb[:64, :64, ::-1].copy()).convert("P", palette=Image.ADAPTIVE, colors=16).save(
        os.path.join(SRC, "palette4.png"), bits=4)
    add("palette4", "png", "png")
    for depth in (1, 2, 4):
        h, w = 37, 45
        vals = rng.integers(0, 1 << depth, (h, w))
        write_png(os.path.join(SRC, "grey%d.png" % depth), [pack_bits(r, depth) for r in vals], w, h, depth, 0)
        add("grey%d" % depth, "png", "png")
    g = smooth(40, 50)
    write_png(os.path.join(SRC, "grey-trns.png"), [r.tobytes() for r in g], 50, 40, 8, 0,
              extra=png_chunk(b"tRNS", struct.pack(">H", int(g[0, 0]))))
    add("grey-trns", "png", "png")
    c = smooth(40, 50, ch=3, noise=25)
    write_png(os.path.join(SRC, "rgb-trns.png"), [r.tobytes() for r in c], 50, 40, 8, 2,
              extra=png_chunk(b"tRNS", struct.pack(">HHH", *[int(v) for v in c[0, 0]])))
    add("rgb-trns", "png", "png")
    write_png(os.path.join(SRC, "rgb-gama.png"), [r.tobytes() for r in c], 50, 40, 8, 2,
              extra=png_chunk(b"gAMA", struct.pack(">I", 45455)))
    add("rgb-gama", "png", "png")
    write_png(os.path.join(SRC, "grey-gama.png"), [r.tobytes() for r in g], 50, 40, 8, 0,
              extra=png_chunk(b"gAMA", struct.pack(">I", 45455)))
    add("grey-gama", "png", "png")

    # JPEG
    gj = smooth(260, 190, noise=10)
    Image.fromarray(gj).save(os.path.join(SRC, "grey.jpg"), quality=90)
    add("grey", "jpg", "jpeg")
    Image.fromarray(gj).save(os.path.join(SRC, "grey-progressive.jpg"), quality=75, progressive=True)
    add("grey-progressive", "jpg", "jpeg")
    cj = smooth(170, 230, ch=3, noise=15)
    cv2.imwrite(os.path.join(SRC, "colour420.jpg"), cj)
    add("colour420", "jpg", "jpeg")
    Image.fromarray(cj[:, :, ::-1].copy()).save(os.path.join(SRC, "colour444-progressive.jpg"), quality=85,
                                                  subsampling=0, progressive=True)
    add("colour444-progressive", "jpg", "jpeg")
    for orient in (3, 6, 8):
        im = Image.fromarray(smooth(90, 130, noise=10))
        exif = Image.Exif()
        exif[0x0112] = orient
        im.save(os.path.join(SRC, "exif%d.jpg" % orient), quality=90, exif=exif.tobytes())
        add("exif%d" % orient, "jpg", "jpeg")

    # DICOM
    import pydicom
    def dcm(name, arr, **kw):
        path = os.path.join(SRC, name + ".dcm")
        write_dicom(path, arr, **kw)
        ds = pydicom.dcmread(path)
        add(name, "dcm", "dicom", expect_from_cv2=False, dicom=dicom_expected(ds))
    d16 = smooth(200, 160, bits=12).astype(np.uint16)
    dcm("dicom-explicit-u16-window", d16, window=("2000", "3000"))
    dcm("dicom-implicit-s16-rescale", (d16.astype(np.int32) - 2048).astype(np.int16), explicit=False, signed=True,
        slope="0.5", intercept="-100")
    dcm("dicom-mono1-u8-minmax", smooth(120, 140), mono1=True)
    dcm("dicom-multiwindow", d16, window=(["1500", "2500"], ["1000", "4000"]))
    write_dicom(os.path.join(SRC, "dicom-bigendian.dcm"), d16[:20, :20], big=True)
    cases.append({"name": "dicom-bigendian", "file": "src/dicom-bigendian.dcm", "kind": "dicom",
                  "error": "1.2.840.10008.1.2.2"})
    write_dicom(os.path.join(SRC, "dicom-jpeg.dcm"), d16[:20, :20], ts="1.2.840.10008.1.2.4.50")
    cases.append({"name": "dicom-jpeg", "file": "src/dicom-jpeg.dcm", "kind": "dicom",
                  "error": "1.2.840.10008.1.2.4.50"})

    # Corrupt / not images
    full = open(os.path.join(SRC, "grey8-landscape.png"), "rb").read()
    open(os.path.join(SRC, "truncated.png"), "wb").write(full[: len(full) // 2])
    cases.append({"name": "truncated", "file": "src/truncated.png", "kind": "png", "error": "truncated.png"})
    fj = open(os.path.join(SRC, "grey.jpg"), "rb").read()
    open(os.path.join(SRC, "truncated.jpg"), "wb").write(fj[: len(fj) // 3])
    cases.append({"name": "truncated-jpg", "file": "src/truncated.jpg", "kind": "jpeg", "error": "truncated.jpg"})
    fd = open(os.path.join(SRC, "dicom-explicit-u16-window.dcm"), "rb").read()
    open(os.path.join(SRC, "truncated.dcm"), "wb").write(fd[: len(fd) - 1000])
    cases.append({"name": "truncated-dcm", "file": "src/truncated.dcm", "kind": "dicom", "error": "truncated.dcm"})
    open(os.path.join(SRC, "not-an-image.png"), "wb").write(b"this is a text file, not an image\n")
    cases.append({"name": "not-an-image", "file": "src/not-an-image.png", "kind": "other", "error": "not-an-image.png"})
    open(os.path.join(SRC, "empty.jpg"), "wb").write(b"")
    cases.append({"name": "empty", "file": "src/empty.jpg", "kind": "other", "error": "empty.jpg"})

    # INTER_AREA cases (small sizes, every path: integer and fractional shrink, enlarge, mixed)
    with open(os.path.join(OUT, "resize.bin"), "wb") as f:
        for i in range(120):
            w, h = int(rng.integers(1, 40)), int(rng.integers(1, 40))
            mode = i % 4
            if mode == 0:
                kx, ky = int(rng.integers(1, 5)), int(rng.integers(1, 5))
                dw, dh = max(1, w // kx), max(1, h // ky)
                w, h = dw * kx, dh * ky
            else:
                dw, dh = int(rng.integers(1, 64)), int(rng.integers(1, 64))
            img = rng.integers(0, 256, (h, w), dtype=np.uint8) if i % 3 else smooth(h, w, noise=30)
            r = cv2.resize(img, (dw, dh), interpolation=cv2.INTER_AREA)
            f.write(struct.pack("<4I", w, h, dw, dh) + img.tobytes() + r.tobytes())

    with open(os.path.join(OUT, "index.json"), "w") as f:
        json.dump({"generator": "tools/fixtures-image.py", "opencv": cv2.__version__, "cases": cases}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
