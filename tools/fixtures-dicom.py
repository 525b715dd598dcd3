#!/usr/bin/python3
"""DICOM transfer-syntax fixtures for native/tests/image/test_dicom.cpp, made with an independent
toolkit (dcmtk, gdcm) from small uncompressed sources written with pydicom.

Run with Debian's python: /usr/bin/python3 tools/fixtures-dicom.py   (re-runnable; needs dcmtk,
libgdcm-tools, pydicom, numpy). Writes test/fixtures/dicom/:
  <name>.dcm              the fixture files (every syntax; corrupt variants)
  exp/<sha>.raw           expected stored values of all frames (after BitsStored masking and sign
                          extension), int16 LE when BitsAllocated is 16 ("i16": signed or not, a
                          16-bit unsigned value is stored as its uint16 bit pattern -> "u16"), uint8
                          when 8 ("u8"); content-addressed, so lossless files share their source's
  exp/<sha>.u8            expected 8-bit output of one frame (the windowing rule of
                          src/image/dicom.ts, computed in numpy as tools/fixtures-image.py does)
  image-<case>.u8         test/fixtures/image/expect/<case>.decoded.png as raw bytes (the C++ test
                          has no PNG decoder)
  index.json              per file: transfer syntax, rows, cols, frames, raw dtype and file,
                          per-frame expected 8-bit file; or the expected error code + message part
Expected values: each file is decompressed by dcmtk (dcmdjpeg / dcmdrle / dcmdjpls / dcmconv) or
gdcm (gdcmconv --raw, for JPEG 2000) and its stored values read back with numpy; for lossless
syntaxes the script also asserts that they equal the uncompressed source's.
"""
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate, encapsulate_extended, generate_pixel_data_frame

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "test", "fixtures", "dicom")
EXP = os.path.join(OUT, "exp")
IMG = os.path.join(ROOT, "test", "fixtures", "image")
TMP = tempfile.mkdtemp(prefix="cz-dicom-fix-")

TS = {
    "implicit": "1.2.840.10008.1.2",
    "explicit": "1.2.840.10008.1.2.1",
    "deflated": "1.2.840.10008.1.2.1.99",
    "big": "1.2.840.10008.1.2.2",
    "jpeg-baseline": "1.2.840.10008.1.2.4.50",
    "jpeg-extended": "1.2.840.10008.1.2.4.51",
    "jpeg-lossless": "1.2.840.10008.1.2.4.57",
    "jpeg-sv1": "1.2.840.10008.1.2.4.70",
    "jpegls": "1.2.840.10008.1.2.4.80",
    "jpegls-near": "1.2.840.10008.1.2.4.81",
    "j2k-lossless": "1.2.840.10008.1.2.4.90",
    "j2k": "1.2.840.10008.1.2.4.91",
    "rle": "1.2.840.10008.1.2.5",
}
LOSSY = {TS["jpeg-baseline"], TS["jpeg-extended"], TS["jpegls-near"], TS["j2k"]}


def run(*cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("command failed: %s\n%s%s" % (" ".join(cmd), r.stdout, r.stderr))


def smooth(h, w, bits, seed, frame=0):
    """Smooth gradients + a disc + sharp-edged bars + a little noise, using `bits` bits."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    v = 0.45 * (x / w) + 0.25 * (y / h) + 0.15 * np.sin((x + 3 * frame) / 7.0) * np.cos(y / 9.0)
    v += 0.3 * (((x - w * 0.6) ** 2 + (y - h * 0.4) ** 2) < (min(h, w) * 0.2) ** 2)
    v[:, (w // 8):(w // 8 + 3)] = 0.02  # a dark bar
    v[(h * 3 // 4):(h * 3 // 4 + 2), :] = 0.97  # a bright line
    v += rng.normal(0, 0.01, v.shape)
    v = np.clip(v, 0, 1)
    return np.round(v * (2 ** bits - 1)).astype(np.int64)


def write_source(path, frames, *, bits_alloc, bits_stored, signed=False, mono1=False, slope=None,
                 intercept=None, window=None, raw_override=None):
    """An explicit VR little endian file; frames: list of 2-D int arrays of stored values."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    meta.TransferSyntaxUID = TS["explicit"]
    ds = FileDataset(path, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.2"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.3"
    ds.PatientName = "Test^Fixture"
    ds.Modality = "OT"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if mono1 else "MONOCHROME2"
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
    ds.Rows, ds.Columns = frames[0].shape
    ds.BitsAllocated = bits_alloc
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    if slope is not None:
        ds.RescaleSlope = slope
    if intercept is not None:
        ds.RescaleIntercept = intercept
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.is_little_endian = True
    ds.is_implicit_VR = False
    dt = np.uint8 if bits_alloc == 8 else np.uint16
    mask = (1 << bits_alloc) - 1
    data = b"".join((np.asarray(f) & mask).astype(dt).tobytes() for f in frames)
    if raw_override is not None:
        data = raw_override
    ds.PixelData = data
    ds["PixelData"].VR = "OW" if bits_alloc == 16 else "OB"
    ds.save_as(path, write_like_original=False)


def stored_values(path):
    """Stored values (masked to BitsStored, sign-extended) of all frames of an uncompressed file."""
    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID in (TS["explicit"], TS["implicit"]), ds.file_meta.TransferSyntaxUID
    rows, cols = int(ds.Rows), int(ds.Columns)
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    ba, bs = int(ds.BitsAllocated), int(ds.BitsStored)
    signed = int(ds.PixelRepresentation) == 1
    raw = np.frombuffer(ds.PixelData, np.uint8 if ba == 8 else "<u2")[: rows * cols * frames].astype(np.int64)
    v = raw & ((1 << bs) - 1)
    if signed:
        v = np.where(v >= (1 << (bs - 1)), v - (1 << bs), v)
    return ds, v.reshape(frames, rows, cols)


def first(v):
    if isinstance(v, (list, tuple)) or type(v).__name__ == "MultiValue":
        return float(v[0])
    return float(v)


def expected_u8(ds, x):
    """src/image/dicom.ts's rule on one frame of stored values x."""
    slope = float(getattr(ds, "RescaleSlope", 1) or 1) if "RescaleSlope" in ds else 1.0
    icpt = float(getattr(ds, "RescaleIntercept", 0) or 0) if "RescaleIntercept" in ds else 0.0
    y = x.astype(np.float64) * slope + icpt
    c = first(ds.WindowCenter) if "WindowCenter" in ds else None
    w = first(ds.WindowWidth) if "WindowWidth" in ds else None
    if c is not None and w is not None and w >= 1:
        lo, hi = c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            v = ((y - (c - 0.5)) / (w - 1) + 0.5) * 255 if w > 1 else np.zeros_like(y)
        v = np.where(y <= lo, 0.0, np.where(y > hi, 255.0, v))
        out = np.clip(np.floor(v + 0.5), 0, 255).astype(np.uint8)
    else:
        mn, mx = y.min(), y.max()
        out = np.zeros(y.shape, np.uint8) if mx == mn else \
            np.clip(np.floor((y - mn) / (mx - mn) * 255.0 + 0.5), 0, 255).astype(np.uint8)
    if str(ds.PhotometricInterpretation).upper() == "MONOCHROME1":
        out = 255 - out
    return out


def store(data, ext):
    h = hashlib.sha1(data).hexdigest()[:12]
    name = "exp/%s.%s" % (h, ext)
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
    return name


def decompress(path, ts):
    """An uncompressed (explicit VR LE) copy of path, made by dcmtk or gdcm."""
    out = os.path.join(TMP, "d-" + os.path.basename(path))
    if ts in (TS["jpeg-baseline"], TS["jpeg-extended"], TS["jpeg-lossless"], TS["jpeg-sv1"]):
        run("dcmdjpeg", "+cn", path, out)
    elif ts == TS["rle"]:
        run("dcmdrle", path, out)
    elif ts in (TS["jpegls"], TS["jpegls-near"]):
        run("dcmdjpls", path, out)
    elif ts in (TS["j2k-lossless"], TS["j2k"]):
        run("gdcmconv", "--raw", path, out)
    else:
        run("dcmconv", "+te", path, out)
    return out


cases = []


def add(name, src_values=None, note=None):
    """Records fixture <name>.dcm with expectations from its independent decompression."""
    path = os.path.join(OUT, name + ".dcm")
    ts = str(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)
    _, v = stored_values(decompress(path, ts))
    # the fixture's own header rules (gdcmconv --raw rewrites BitsStored 12 as 16, for one)
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    ba, bs = int(ds.BitsAllocated), int(ds.BitsStored)
    m = v & ((1 << bs) - 1)
    if int(ds.PixelRepresentation) == 1:
        m = np.where(m >= (1 << (bs - 1)), m - (1 << bs), m)
    if not np.array_equal(m, v):
        print("note: %s: %d decoded values outside BitsStored %d" % (name, int((m != v).sum()), bs))
    v = m
    if src_values is not None and ts not in LOSSY:
        assert np.array_equal(v, src_values), "%s: lossless round trip differs from the source" % name
    frames, rows, cols = v.shape
    if ba == 8:
        dtype, raw = "u8", v.astype(np.uint8).tobytes()
    elif int(ds.PixelRepresentation) == 1:
        dtype, raw = "i16", v.astype("<i2").tobytes()
    else:
        dtype, raw = "u16", v.astype("<u2").tobytes()
    c = {"name": name, "file": name + ".dcm", "ts": ts, "rows": rows, "cols": cols, "frames": frames,
         "bits_allocated": ba, "bits_stored": int(ds.BitsStored), "pixel_rep": int(ds.PixelRepresentation),
         "photometric": str(ds.PhotometricInterpretation), "lossy": ts in LOSSY,
         "raw_dtype": dtype, "raw": store(raw, "raw"),
         "u8": [store(expected_u8(ds, v[k]).tobytes(), "u8") for k in range(frames)]}
    if note:
        c["note"] = note
    cases.append(c)
    return path


def add_error(name, code, message, note):
    meta = pydicom.filereader.read_file_meta_info(os.path.join(OUT, name + ".dcm"))
    cases.append({"name": name, "file": name + ".dcm", "ts": str(meta.TransferSyntaxUID), "error": code,
                  "message": message, "note": note})


def replace_frames(src, dst, fn):
    """Rewrites the encapsulated frames of src through fn(list of frame bytes) -> list."""
    ds = pydicom.dcmread(src)
    n = int(getattr(ds, "NumberOfFrames", 1) or 1)
    frames = [bytes(f) for f in generate_pixel_data_frame(ds.PixelData, n)]
    ds.PixelData = encapsulate(fn(frames))
    ds.save_as(dst, write_like_original=True)


def lossless_jpeg(img, precision, psv, restart):
    """A JPEG lossless (process 14, SOF3) stream with restart intervals: dcmcjpeg writes none, so
    this small encoder makes them (T.81 H.1; 5-bit codes for the 17 difference categories). Its
    output is checked by decompressing with dcmtk's dcmdjpeg (add() asserts the round trip)."""
    h, w = img.shape
    x = img.astype(np.int64) & ((1 << precision) - 1)
    out = bytearray(b"\xff\xd8")
    out += b"\xff\xc3" + struct.pack(">HBHHBBBB", 11, precision, h, w, 1, 1, 0x11, 0)
    out += b"\xff\xc4" + struct.pack(">HB", 2 + 1 + 16 + 17, 0) + bytes([0, 0, 0, 0, 17] + [0] * 11) + bytes(range(17))
    if restart:
        out += b"\xff\xdd" + struct.pack(">HH", 4, restart)
    out += b"\xff\xda" + struct.pack(">HBBBBBB", 8, 1, 1, 0x00, psv, 0, 0)
    acc, nbits, data = 0, 0, bytearray()

    def put(v, n):
        nonlocal acc, nbits
        acc = (acc << n) | (v & ((1 << n) - 1))
        nbits += n
        while nbits >= 8:
            b = (acc >> (nbits - 8)) & 255
            nbits -= 8
            data.append(b)
            if b == 0xFF:
                data.append(0)
    count, rst, restart_row, first = 0, 0, 0, True
    for r in range(h):
        for c in range(w):
            if restart and count == restart:
                if nbits:
                    put(0x7F, 8 - nbits)
                data.extend(b"\xff" + bytes([0xD0 + rst % 8]))
                rst += 1
                count, restart_row, first = 0, r, True
            if first:
                pred, first = 1 << (precision - 1), False
            elif r == restart_row:
                pred = x[r, c - 1]
            elif c == 0:
                pred = x[r - 1, 0]
            else:
                ra, rb, rc = x[r, c - 1], x[r - 1, c], x[r - 1, c - 1]
                pred = [0, ra, rb, rc, ra + rb - rc, ra + ((rb - rc) >> 1), rb + ((ra - rc) >> 1), (ra + rb) >> 1][psv]
            d = int(x[r, c] - pred) & 0xFFFF
            if d >= 32768:
                d -= 65536
            ssss = 16 if d == -32768 else abs(d).bit_length()
            put(ssss, 5)
            if 0 < ssss < 16:
                put(d if d > 0 else d + (1 << ssss) - 1, ssss)
            count += 1
    if nbits:
        put(0x7F, 8 - nbits)
    return bytes(out + data + b"\xff\xd9")


def jp2_wrap(cs, rows, cols, bits, signed):
    """A minimal JP2 file (signature, ftyp, jp2h with ihdr + greyscale colr, jp2c) around a J2K codestream."""
    box = lambda t, body: struct.pack(">I", 8 + len(body)) + t + body
    ihdr = box(b"ihdr", struct.pack(">IIHBBBB", rows, cols, 1, (bits - 1) | (0x80 if signed else 0), 7, 0, 0))
    colr = box(b"colr", struct.pack(">BBBI", 1, 0, 0, 17))
    return (b"\0\0\0\x0cjP  \r\n\x87\n" + box(b"ftyp", b"jp2 " + struct.pack(">I", 0) + b"jp2 ") +
            box(b"jp2h", ihdr + colr) + box(b"jp2c", bytes(cs)))


def with_frames(src, dst, ts, frames):
    ds = pydicom.dcmread(src)
    ds.file_meta.TransferSyntaxUID = ts
    ds.PixelData = encapsulate(frames)
    ds["PixelData"].VR = "OB"
    ds.save_as(dst, write_like_original=False)


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(EXP)
    S = lambda n: os.path.join(TMP, n + ".dcm")  # uncompressed sources
    srcs = {}

    def source(key, frames, **kw):
        write_source(S(key), frames, **kw)
        srcs[key] = stored_values(S(key))[1]

    source("u8", [smooth(48, 64, 8, 1)], bits_alloc=8, bits_stored=8)
    source("u12", [smooth(64, 96, 12, 2)], bits_alloc=16, bits_stored=12, window=("2000", "3000"))
    source("u16", [smooth(60, 80, 16, 3)], bits_alloc=16, bits_stored=16)
    s16 = smooth(56, 72, 16, 4) - 32768
    source("s16", [s16], bits_alloc=16, bits_stored=16, signed=True, slope="0.5", intercept="-100",
           window=(["-120", "300"], ["20000", "4000"]))
    source("mono1", [smooth(50, 70, 12, 5)], bits_alloc=16, bits_stored=12, mono1=True)
    source("multi", [smooth(48, 64, 12, 6 + k, frame=k) for k in range(3)], bits_alloc=16, bits_stored=12)
    flat = np.zeros((40, 90), np.int64) + 300
    flat[10:20, 30:60] = 2000
    flat[25:, :45] = 10
    flat[30, 70:] = np.arange(20) * 50
    source("flat", [flat], bits_alloc=16, bits_stored=12)
    # signed 12-bit in 16 (two's complement sign extension from bit 11)
    source("s12", [smooth(40, 60, 12, 9) - 2048], bits_alloc=16, bits_stored=12, signed=True,
           intercept="1024")

    def conv(key, name, *args, tool="dcmconv"):
        run(tool, *args, S(key), os.path.join(OUT, name + ".dcm"))
        return add(name, srcs[key])

    # 1. uncompressed and deflated
    for key in ("u8", "u12", "u16", "s16", "mono1", "multi", "s12"):
        conv(key, key + "-explicit", "+te")
    for key in ("u8", "u16", "s16", "multi"):
        conv(key, key + "-implicit", "+ti")
        conv(key, key + "-big", "+tb")
    for key in ("u8", "u12", "s16", "multi"):
        conv(key, key + "-deflated", "+td")
    # BitsStored masking: 12-bit data with junk in the top 4 bits (uncompressed only)
    junk = (srcs["u12"][0] | (0xA << 12)).astype("<u2").tobytes()
    write_source(os.path.join(OUT, "u12-highbits.dcm"), [srcs["u12"][0]], bits_alloc=16, bits_stored=12,
                 window=("2000", "3000"), raw_override=junk)
    add("u12-highbits", srcs["u12"], note="junk above BitsStored must be masked off")
    # no preamble (data set starting with the file meta group)
    d = open(os.path.join(OUT, "u16-explicit.dcm"), "rb").read()
    open(os.path.join(OUT, "u16-nopreamble.dcm"), "wb").write(d[132:])
    cases.append(dict(cases[[c["name"] for c in cases].index("u16-explicit")], name="u16-nopreamble",
                      file="u16-nopreamble.dcm", note="no 128-byte preamble and no DICM"))

    # bare data sets (no preamble, no meta group): implicit and explicit VR little endian
    for key, opt in (("u16", "+ti"), ("s16", "+te")):
        name = "%s-dataset%s" % (key, opt.replace("+t", "-"))
        run("dcmconv", opt, "-F", S(key), os.path.join(OUT, name + ".dcm"))
        cases.append(dict(cases[[c["name"] for c in cases].index(key + "-explicit")], name=name, file=name + ".dcm",
                          ts=TS["implicit"] if opt == "+ti" else TS["explicit"],
                          note="data set without preamble and file meta group"))

    # 2. RLE
    for key in ("u8", "u12", "u16", "s16", "mono1", "multi"):
        conv(key, key + "-rle", tool="dcmcrle")
    # 3. JPEG lossless process 14 (several predictors) and SV1
    for key, sv in (("u8", 1), ("u12", 2), ("u16", 3), ("s16", 4), ("mono1", 5), ("multi", 6), ("s12", 7)):
        conv(key, "%s-jpll-sv%d" % (key, sv), "+el", "+sv", str(sv), tool="dcmcjpeg")
    for key in ("u8", "u12", "u16", "s16", "multi"):
        conv(key, key + "-jpsv1", "+e1", tool="dcmcjpeg")
    # point transform: lossy in effect (expected = dcmdjpeg's output)
    run("dcmcjpeg", "+el", "+sv", "1", "+pt", "2", S("u12"), os.path.join(OUT, "u12-jpll-pt2.dcm"))
    add("u12-jpll-pt2", note="point transform 2")
    # several fragments per frame (fragments of at most 1 KB)
    conv("u16", "u16-jpll-frag", "+e1", "+fs", "1", tool="dcmcjpeg")
    conv("multi", "multi-jpll-frag-nobot", "+e1", "+fs", "1", "-ot", tool="dcmcjpeg")
    conv("multi", "multi-jpll-frag-bot", "+e1", "+fs", "1", tool="dcmcjpeg")
    conv("multi", "multi-rle-frag", "+fs", "1", tool="dcmcrle")
    # restart intervals (our encoder; dcmdjpeg is the judge): whole rows, and mid-row
    for key, prec, psv, ri in (("u16", 16, 1, 160), ("u12", 12, 7, 96), ("multi", 12, 4, 64), ("u8", 8, 6, 128)):
        name = "%s-jpll-restart%d" % (key, ri)
        with_frames(S(key), os.path.join(OUT, name + ".dcm"), TS["jpeg-lossless"],
                    [lossless_jpeg(f, prec, psv, ri) for f in srcs[key]])
        add(name, srcs[key], note="restart interval %d" % ri)
    # 4. JPEG 2000 (gdcm -> OpenJPEG)
    for key in ("u8", "u12", "u16", "s16", "mono1", "multi", "s12"):
        conv(key, key + "-j2k", "--j2k", tool="gdcmconv")
    for key in ("u8", "u12", "s16", "multi"):
        conv(key, key + "-j2k-lossy", "--j2k", "--lossy", "-q", "40", tool="gdcmconv")
    # JP2 file format (boxes around the codestream) and an Extended Offset Table
    ds = pydicom.dcmread(os.path.join(OUT, "s16-j2k.dcm"))
    with_frames(os.path.join(OUT, "s16-j2k.dcm"), os.path.join(OUT, "s16-jp2.dcm"), TS["j2k-lossless"],
                [jp2_wrap(f, int(ds.Rows), int(ds.Columns), 16, True) for f in
                 generate_pixel_data_frame(ds.PixelData, 1)])
    add("s16-jp2", srcs["s16"], note="JP2 boxes around the J2K codestream")
    ds = pydicom.dcmread(os.path.join(OUT, "multi-jpll-sv6.dcm"))
    frames = [bytes(f) for f in generate_pixel_data_frame(ds.PixelData, 3)]
    pd, eot, eot_len = encapsulate_extended(frames)
    ds.PixelData = pd
    ds.ExtendedOffsetTable = eot
    ds.ExtendedOffsetTableLengths = eot_len
    ds.save_as(os.path.join(OUT, "multi-jpll-eot.dcm"), write_like_original=True)
    add("multi-jpll-eot", srcs["multi"], note="Extended Offset Table, empty Basic Offset Table")
    # 5. JPEG baseline (8-bit) and extended (12-bit)
    conv("u8", "u8-jpeg-baseline", "+eb", tool="dcmcjpeg")
    conv("u12", "u12-jpeg-extended", "+ee", tool="dcmcjpeg")
    conv("multi", "multi-jpeg-extended", "+ee", tool="dcmcjpeg")
    # 6. JPEG-LS
    for key in ("u8", "u12", "u16", "s16", "multi"):
        conv(key, key + "-jpls", "+el", tool="dcmcjpls")
    for key in ("u8", "u12"):
        conv(key, key + "-jpls-near", "+en", tool="dcmcjpls")
    # preset parameters (an LSE segment), near 5, and a mostly flat image (long runs, line ends)
    conv("u16", "u16-jpls-preset", "+el", "+t1", "5", "+t2", "40", "+t3", "300", "+rs", "32", tool="dcmcjpls")
    conv("u12", "u12-jpls-near5", "+en", "+md", "5", tool="dcmcjpls")
    conv("flat", "flat-jpls", "+el", tool="dcmcjpls")
    conv("flat", "flat-jpls-near", "+en", "+md", "3", tool="dcmcjpls")
    conv("flat", "flat-rle", tool="dcmcrle")
    conv("flat", "flat-jpsv1", "+e1", tool="dcmcjpeg")

    # Colour: YBR_FULL_422 JPEG baseline (img2dcm): refused (the TypeScript decoder reads MONOCHROME only)
    run("img2dcm", os.path.join(IMG, "src", "colour420.jpg"), os.path.join(OUT, "colour-jpeg.dcm"))
    add_error("colour-jpeg", "CZ_ERR_UNSUPPORTED", "YBR_FULL_422", "colour JPEG baseline: photometric refused")

    # Corrupt variants
    def trunc_stream(src, name, note):
        replace_frames(os.path.join(OUT, src + ".dcm"), os.path.join(OUT, name + ".dcm"),
                       lambda fr: [fr[0][: len(fr[0]) // 2]] + fr[1:])
        add_error(name, "CZ_ERR_FORMAT", "", note)
    trunc_stream("u16-rle", "bad-rle-truncated", "RLE segment cut in half")
    trunc_stream("u16-jpll-sv3", "bad-jpll-truncated", "JPEG lossless scan cut in half")
    trunc_stream("u16-j2k", "bad-j2k-truncated", "J2K codestream cut in half")
    trunc_stream("u8-jpeg-baseline", "bad-jpeg-truncated", "JPEG baseline cut in half")
    trunc_stream("u12-jpeg-extended", "bad-jpeg12-truncated", "12-bit JPEG extended cut in half")
    trunc_stream("u16-jpls", "bad-jpls-truncated", "JPEG-LS cut in half")

    def huff(fr):
        f = bytearray(fr[0])
        sos = f.index(b"\xff\xda")
        mid = sos + (len(f) - sos) // 2
        f[mid:mid + 16] = b"\xff\x00" * 8  # 64 one bits: no Huffman code is all ones
        return [bytes(f)] + fr[1:]
    replace_frames(os.path.join(OUT, "u16-jpsv1.dcm"), os.path.join(OUT, "bad-jpll-huffman.dcm"), huff)
    add_error("bad-jpll-huffman", "CZ_ERR_FORMAT", "Huffman", "JPEG lossless scan with an invalid Huffman code")

    # a fragment (item) length past the end of the file
    d = bytearray(open(os.path.join(OUT, "u16-rle.dcm"), "rb").read())
    p = d.index(b"\xe0\x7f\x10\x00OB")
    bot = p + 12  # item tag of the basic offset table
    bot_len = struct.unpack_from("<I", d, bot + 4)[0]
    frag = bot + 8 + bot_len
    assert d[frag:frag + 4] == b"\xfe\xff\x00\xe0"
    struct.pack_into("<I", d, frag + 4, 0x7FFFFFF0)
    open(os.path.join(OUT, "bad-fragment-length.dcm"), "wb").write(d)
    add_error("bad-fragment-length", "CZ_ERR_FORMAT", "fragment", "first fragment's length runs past the end")

    # Rows x Columns 65535 x 65535 declared with tiny data (uncompressed and encapsulated)
    for src, name in (("u16-explicit", "bad-huge-explicit"), ("u16-jpsv1", "bad-huge-jpll")):
        ds = pydicom.dcmread(os.path.join(OUT, src + ".dcm"))
        ds.Rows = ds.Columns = 65535
        ds.save_as(os.path.join(OUT, name + ".dcm"), write_like_original=True)
        add_error(name, "CZ_ERR_OUT_OF_MEMORY", "65535", "65535 x 65535 declared with tiny data")

    # Deflate bomb: a deflated data set whose pixel data inflates to 1.1 GB of zeros
    write_bomb(os.path.join(OUT, "bad-deflate-bomb.dcm"))
    add_error("bad-deflate-bomb", "CZ_ERR_OUT_OF_MEMORY", "", "deflated data set inflating to > 1 GB")
    # truncated deflate stream
    d = open(os.path.join(OUT, "u16-explicit.dcm"), "rb").read()
    d = open(os.path.join(OUT, "s16-deflated.dcm"), "rb").read()
    open(os.path.join(OUT, "bad-deflate-truncated.dcm"), "wb").write(d[: len(d) * 2 // 3])
    add_error("bad-deflate-truncated", "CZ_ERR_FORMAT", "", "deflate stream cut")
    # truncated uncompressed pixel data
    d = open(os.path.join(OUT, "u16-explicit.dcm"), "rb").read()
    open(os.path.join(OUT, "bad-explicit-truncated.dcm"), "wb").write(d[:-1000])
    add_error("bad-explicit-truncated", "CZ_ERR_FORMAT", "pixel data truncated", "uncompressed file cut")

    # The DICOM cases of test/fixtures/image (decoded PNGs as raw bytes)
    import zlib as _z
    idx = json.load(open(os.path.join(IMG, "index.json")))
    image_cases = []
    for c in idx["cases"]:
        if c["kind"] != "dicom" or "error" in c:
            continue
        u8 = read_png_grey8(os.path.join(IMG, c["decoded"]))
        assert u8.shape == (c["height"], c["width"])
        name = "image-%s.u8" % c["name"]
        open(os.path.join(OUT, name), "wb").write(u8.tobytes())
        image_cases.append({"name": c["name"], "expected": name})

    index = {"generator": "tools/fixtures-dicom.py",
             "tools": subprocess.run(["dcmdump", "--version"], capture_output=True, text=True).stdout.split("\n")[0],
             "cases": cases, "image_cases": image_cases}
    with open(os.path.join(OUT, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
    shutil.rmtree(TMP)
    total = sum(os.path.getsize(os.path.join(dp, fn)) for dp, _, fns in os.walk(OUT) for fn in fns)
    print("%d cases, %d image cases, %.0f KB in %s" % (len(cases), len(image_cases), total / 1024, OUT))


def read_png_grey8(path):
    """A minimal PNG reader for the 8-bit grey, non-interlaced files of fixtures-image.py."""
    d = open(path, "rb").read()
    assert d[:8] == b"\x89PNG\r\n\x1a\n"
    p, idat = 8, b""
    while p < len(d):
        n, t = struct.unpack(">I4s", d[p:p + 8])
        body = d[p + 8:p + 8 + n]
        if t == b"IHDR":
            w, h, depth, ctype, _, _, inter = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype == 0 and inter == 0, path
        elif t == b"IDAT":
            idat += body
        p += 12 + n
    raw = zlib.decompress(idat)
    out = np.zeros((h, w), np.uint8)
    prev = np.zeros(w, np.int32)
    for y in range(h):
        ft = raw[y * (w + 1)]
        line = np.frombuffer(raw, np.uint8, w, y * (w + 1) + 1).astype(np.int32)
        cur = np.zeros(w, np.int32)
        for x in range(w):
            a = cur[x - 1] if x else 0
            b = prev[x]
            c = prev[x - 1] if x else 0
            if ft == 0:
                pr = 0
            elif ft == 1:
                pr = a
            elif ft == 2:
                pr = b
            elif ft == 3:
                pr = (a + b) // 2
            else:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                pr = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            cur[x] = (line[x] + pr) & 255
        out[y] = cur
        prev = cur
    return out


def write_bomb(path):
    """Deflated explicit VR LE: 64 x 64 16-bit image whose OW pixel data declares and inflates to
    1.1 GB of zeros (a compression ratio of ~1000: the file stays near 1.1 MB)."""
    body = b""

    def el(group, elem, vr, value):
        if vr in ("OB", "OW", "SQ", "UN", "UT"):
            return struct.pack("<HH2sHI", group, elem, vr.encode(), 0, len(value)) + value
        return struct.pack("<HH2sH", group, elem, vr.encode(), len(value)) + value
    ts = TS["deflated"].encode() + b"\0"
    meta_body = el(2, 1, "OB", b"\0\1") + el(2, 2, "UI", b"1.2.840.10008.5.1.4.1.1.7\0") + \
        el(2, 3, "UI", b"1.2.826.0.1.3680043.8.498.9") + el(2, 0x10, "UI", ts)
    meta = el(2, 0, "UL", struct.pack("<I", len(meta_body))) + meta_body
    ds = el(0x28, 2, "US", struct.pack("<H", 1)) + el(0x28, 4, "CS", b"MONOCHROME2 ") + \
        el(0x28, 0x10, "US", struct.pack("<H", 64)) + el(0x28, 0x11, "US", struct.pack("<H", 64)) + \
        el(0x28, 0x100, "US", struct.pack("<H", 16)) + el(0x28, 0x101, "US", struct.pack("<H", 16)) + \
        el(0x28, 0x103, "US", struct.pack("<H", 0))
    size = 1100 * 1024 * 1024
    ds += struct.pack("<HH2sHI", 0x7FE0, 0x10, b"OW", 0, size)
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [co.compress(ds)]
    chunk = bytes(16 * 1024 * 1024)
    for _ in range(size // len(chunk)):
        parts.append(co.compress(chunk))
    parts.append(co.flush())
    with open(path, "wb") as f:
        f.write(b"\0" * 128 + b"DICM" + meta + b"".join(parts))


if __name__ == "__main__":
    main()
