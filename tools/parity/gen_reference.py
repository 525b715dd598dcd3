#!/usr/bin/env python3
"""The full-size golden reference for the parity tools, made lean for a short GPU session.

    python3 tools/parity/gen_reference.py --out /tmp/carzero-full [--threads N] [--keep-st]

Writes what tools/parity/full-size.{mjs,ts} read, exactly as tools/reference/full_size.py does
(same seed, same generator: tools/reference/make_fixtures.py), minus what the parity does not use:
no vit.onnx, no timings, no bert-full-st/ (416 MB; --keep-st keeps it), no checkpoint reload
self-check (that check calls torch.load, whose weights_only default refuses the checkpoint's
pickled omegaconf-like classes in torch >= 2.6; the file is read back by our converter anyway).

Works with torch 1.13 (Debian's /usr/bin/python3) and torch 2.x. Needs numpy, cv2 (opencv) and
PIL. Prints one JSON line at the end: {"out", "seconds", "bytes", "torch", "cv2", "threads"}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))

import torch  # noqa: E402

import ckpt_io as IO  # noqa: E402
import fixture_lib as L  # noqa: E402
import full_size as FS  # noqa: E402
import make_fixtures as MF  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=20240601)  # full_size.py's default
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--keep-st", action="store_true", help="also write bert-full-st/ (safetensors copy)")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    t0 = time.time()
    log = lambda s: print(f"[gen-ref {time.time() - t0:6.1f}s] {s}", flush=True)  # noqa: E731
    if not a.keep_st:
        real = IO.write_safetensors

        def write_st(tensors, path, metadata=None):
            if os.path.basename(os.path.dirname(path)).endswith("-st"):
                log(f"skipped {path} (not used by the parity; --keep-st writes it)")
                return
            return real(tensors, path, metadata)

        IO.write_safetensors = write_st
        MF.IO.write_safetensors = write_st
    vocab = L.full_vocab(28996)
    MF.generate(a.out, FS.full_config, vocab, seed=a.seed, tiny=False, log=log)
    total = 0
    for dp, _, fs in os.walk(a.out):
        total += sum(os.path.getsize(os.path.join(dp, f)) for f in fs)
    try:
        import cv2
        cv2v = cv2.__version__
    except Exception:  # noqa: BLE001
        cv2v = None
    print(json.dumps({"out": a.out, "seconds": round(time.time() - t0, 1), "bytes": total,
                      "torch": torch.__version__, "cv2": cv2v, "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()
