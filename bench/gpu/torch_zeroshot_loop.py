#!/usr/bin/env python3
"""The original CARZero zero-shot loop as a PyTorch baseline for `classify` throughput.

The authors' inference (CARZero/CARZero.py, get_dqn_similarities) encodes a batch of images and
the class prompts, then loops over the images, calling the fusion module once per image for the
image-to-text direction and once per image for the text-to-image direction. This script times
that loop with the reference model (tools/reference/carzero_ref.py, full size, random weights:
the cost does not depend on the values) for Q = 14 and 192 prompts, and, for comparison, the
same work with all pairs in one call. Prompt embeddings are computed once, outside the timing,
as in a zero-shot run over many images.

  python3 bench/gpu/torch_zeroshot_loop.py --device cuda --batch 64 --json out.json
  /usr/bin/python3 bench/gpu/torch_zeroshot_loop.py --device cpu --batch 2 --texts 14 --reps 1   # rehearsal
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'tools', 'reference'))
import carzero_ref as ref  # noqa: E402


def sync(dev):
    if dev.type == 'cuda':
        torch.cuda.synchronize()


def timed(fn, dev, reps, warmup):
    for _ in range(warmup):
        fn()
    sync(dev)
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync(dev)
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--batch', type=int, default=64, help='images per encoder batch (the loop runs inside it)')
    ap.add_argument('--texts', default='14,192')
    ap.add_argument('--dtypes', default='bf16,fp32')
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--warmup', type=int, default=1)
    ap.add_argument('--json')
    a = ap.parse_args()
    dev = torch.device(a.device)
    torch.manual_seed(0)
    cfg = ref.CARZeroConfig()
    model = ref.CARZeroRef(cfg).to(dev).eval()
    L, C = cfg.text.max_length, cfg.text.width
    results = []
    report = {'tool': 'bench/gpu/torch_zeroshot_loop.py', 'torch': torch.__version__, 'device': str(dev),
              'gpu': torch.cuda.get_device_name(dev) if dev.type == 'cuda' else None, 'batch': a.batch,
              'results': results}

    def flush():
        if a.json:
            with open(a.json, 'w') as f:
                json.dump(report, f, indent=1)

    for dtype in a.dtypes.split(','):
        if dtype == 'bf16' and dev.type == 'cpu' and not hasattr(torch, 'autocast'):
            continue
        autocast = (lambda: torch.autocast(dev.type, dtype=torch.bfloat16)) if dtype == 'bf16' else None
        for Q in [int(q) for q in a.texts.split(',')]:
            try:
                ids = torch.randint(1000, 20000, (Q, L), device=dev)
                ids[:, 0], ids[:, 12] = 101, 102
                mask = torch.zeros(Q, L, dtype=torch.long, device=dev)
                mask[:, :13] = 1
                tokens = [['[CLS]'] + ['word'] * 11 + ['[SEP]'] + ['[PAD]'] * (L - 13) for _ in range(Q)]
                pixels = torch.randn(a.batch, 3, 224, 224, device=dev)
                with torch.inference_mode():
                    ctx = autocast() if autocast else torch.inference_mode()
                    with ctx:
                        words, sent = model.embed_texts(ids, mask, tokens)  # (Q, L, C), (Q, C)
                        txt_mem = torch.cat([sent.unsqueeze(1), words], dim=1)

                        def loop():
                            g, l = model.embed_images(pixels)
                            img_mem = torch.cat([g.unsqueeze(1), l], dim=1)
                            rows = []
                            for i in range(a.batch):  # the original's per-image loop
                                i2t, _ = model.fusion_module(img_mem[i:i + 1], sent)      # (1, Q)
                                t2i, _ = model.fusion_module(txt_mem, g[i:i + 1])         # (Q, 1)
                                rows.append((i2t + t2i.transpose(0, 1)) / 2)
                            return torch.cat(rows)

                        def batched():
                            g, l = model.embed_images(pixels)
                            return model.score(g, l, sent, words)['score']

                        t_loop = timed(loop, dev, a.reps, a.warmup)
                        t_batch = timed(batched, dev, a.reps, a.warmup)
                results.append({'dtype': dtype, 'texts': Q, 'batch': a.batch,
                                'loop_images_per_s': a.batch / t_loop, 'batched_images_per_s': a.batch / t_batch,
                                'loop_seconds': t_loop, 'batched_seconds': t_batch})
                print(f'{dtype} Q={Q}: original loop {a.batch / t_loop:.1f} images/s, '
                      f'all pairs at once {a.batch / t_batch:.1f} images/s', flush=True)
            except Exception as e:  # noqa: BLE001 - report and go on (e.g. out of memory at Q=192)
                results.append({'dtype': dtype, 'texts': Q, 'batch': a.batch, 'error': f'{type(e).__name__}: {e}'})
                print(f'{dtype} Q={Q}: {type(e).__name__}: {e}', flush=True)
            flush()
    flush()


if __name__ == '__main__':
    main()
