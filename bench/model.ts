// `npm run bench -- model`: the CARZero model on this machine's CPU, with onnxruntime-node running
// the same ViT-B/16 weights side by side (bench/peers/, installed on demand).
//
// Needs the full-size reference model (random weights in the original format; no real weights can
// be downloaded here): `/usr/bin/python3 tools/reference/full_size.py --out /tmp/carzero-full`
// (or --root <dir>). The checkpoint is converted once into <root>/carzero-model.
//
// Measured (medians of interleaved repetitions after warm-up):
//  - ViT-B/16 image encoder forward, batch 1 and 8, ours fp32 and bf16 vs onnxruntime fp32
//    (same weights, same (B, 3, 224, 224) input, same thread count);
//  - BERT-base text encoder + CARZero word aggregation, 14 prompts, L = 97;
//  - alignment head: pairs/s for 8 images x 14 prompts (both directions);
//  - classify end to end: decode + preprocess + embed + score, images/s for 14 classes.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Device, Tensor } from '../src/index.js';
import { CARZero } from '../src/model/carzero.js';
import { NativeModel } from '../src/model/native-model.js';
import { convertCheckpoint } from '../src/weights/convert.js';

const here = dirname(fileURLToPath(import.meta.url));
/** Idle time before each timed ViT call (see the interleaved loop). */
const IDLE_GAP_MS = 150;

export interface Row {
  what: string;
  impl: string;
  batch: number;
  ms: number;
  per_s: number;
  unit: string;
  vs_ort?: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function timeIt(fn: () => Promise<unknown>, reps: number, warmup = 1): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const out: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    await fn();
    out.push(performance.now() - t);
  }
  return out;
}

// The parts of onnxruntime-node this benchmark uses (an optional peer in bench/peers: no types here).
interface OrtSession {
  inputNames: string[];
  run(feeds: Record<string, unknown>): Promise<unknown>;
}
interface Ort {
  env: { versions?: { node?: string } };
  InferenceSession: { create(path: string, options: Record<string, unknown>): Promise<OrtSession> };
  Tensor: new (type: 'float32', data: Float32Array, dims: number[]) => unknown;
}

function loadOrt(): Ort | undefined {
  try {
    const req = createRequire(join(here, 'peers', 'package.json'));
    return req('onnxruntime-node') as Ort;
  } catch {
    return undefined;
  }
}

export async function benchModel(args: string[]): Promise<{ rows: Row[]; notes: string[]; root: string }> {
  const root = args.includes('--root') ? args[args.indexOf('--root') + 1] : '/tmp/carzero-full';
  const reps = args.includes('--reps') ? Number(args[args.indexOf('--reps') + 1]) : 5;
  const threads = cpus().length;
  const notes: string[] = [];
  if (!existsSync(join(root, 'carzero-full.ckpt')))
    throw new Error(
      `${root}/carzero-full.ckpt not found: ` +
        `make it with \`/usr/bin/python3 tools/reference/full_size.py --out ${root}\` ` +
        '(random full-size weights in the original format)',
    );
  const modelDir = join(root, 'carzero-model');
  if (!existsSync(join(modelDir, 'model.safetensors'))) {
    console.log(`bench model: converting ${root}/carzero-full.ckpt -> ${modelDir}`);
    await convertCheckpoint({
      checkpoint: join(root, 'carzero-full.ckpt'),
      textModel: join(root, 'bert-full'),
      out: modelDir,
      vitHeads: 12,
      headHeads: 4,
      force: true,
    });
  }
  const rows: Row[] = [];
  const device = Device.cpu();

  // ---- ViT: ours (fp32, bf16) and onnxruntime (fp32), interleaved ----
  const ort = loadOrt();
  let session: OrtSession | undefined;
  if (!ort)
    notes.push('onnxruntime-node: not installed (ONNXRUNTIME_NODE_INSTALL=skip npm --prefix bench/peers install)');
  else if (!existsSync(join(root, 'vit.onnx')))
    notes.push(`onnxruntime-node: ${root}/vit.onnx missing (tools/reference/full_size.py exports it)`);
  else {
    session = await ort.InferenceSession.create(join(root, 'vit.onnx'), {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
    });
    notes.push(
      `onnxruntime-node ${ort.env.versions?.node ?? ''}: CPU execution provider, ${threads} intra-op threads, ` +
        "graph optimisation 'all', the reference's ONNX export of the same ViT weights",
    );
  }
  const fp32 = await NativeModel.load(modelDir, { device, precision: 'fp32' });
  const bf16 = await NativeModel.load(modelDir, { device, precision: 'bf16' });
  for (const B of [1, 8]) {
    const px = new Float32Array(B * 3 * 224 * 224);
    for (let i = 0; i < px.length; i++) px[i] = Math.sin(i * 0.37) * 1.5;
    using pixels = Tensor.from(px, [B, 3, 224, 224]);
    const runOurs = (m: NativeModel) => async () => {
      const r = await m.embedImages(pixels);
      r.global.dispose();
      r.local.dispose();
    };
    const feeds = session && ort ? { [session.inputNames[0]]: new ort.Tensor('float32', px, [B, 3, 224, 224]) } : {};
    const runOrt = async () => {
      await session?.run(feeds);
    };
    // warm-up each, then interleave so machine noise hits all three alike. Each timed call starts
    // after an idle gap: onnxruntime's intra-op threads spin for a while after a run, and on a
    // 2-core machine that spinning took 18 ms from our fp32 batch-1 forward when it came right
    // after (148 ms against 131 ms after a 150 ms gap; onnxruntime itself: 119 / 116 ms).
    const gap = () => new Promise((resolve) => setTimeout(resolve, IDLE_GAP_MS));
    await runOurs(fp32)();
    await runOurs(bf16)();
    if (session) await runOrt();
    const t: Record<string, number[]> = { fp32: [], bf16: [], ort: [] };
    for (let r = 0; r < reps; r++) {
      await gap();
      t.fp32.push(...(await timeIt(runOurs(fp32), 1, 0)));
      await gap();
      t.bf16.push(...(await timeIt(runOurs(bf16), 1, 0)));
      await gap();
      if (session) t.ort.push(...(await timeIt(runOrt, 1, 0)));
    }
    const ortMs = session ? median(t.ort) : NaN;
    for (const [impl, key] of [
      ['carzero fp32', 'fp32'],
      ['carzero bf16', 'bf16'],
      ['onnxruntime fp32', 'ort'],
    ] as const) {
      if (t[key].length === 0) continue;
      const ms = median(t[key]);
      rows.push({
        what: 'ViT-B/16 forward',
        impl,
        batch: B,
        ms,
        per_s: (B * 1000) / ms,
        unit: 'images/s',
        vs_ort: session ? ortMs / ms : undefined,
      });
    }
  }

  // ---- BERT + aggregation, head, both precisions ----
  const model32 = await CARZero.load(modelDir, { device, precision: 'fp32' });
  const model16 = await CARZero.load(modelDir, { device, precision: 'bf16' });
  const prompts = Object.values(
    JSON.parse(readFileSync(join(root, 'text', 'prompts-str.json'), 'utf8')) as Record<string, string>,
  );
  const qualifiers = ['left', 'right', 'bilateral', 'mild', 'severe', 'small', 'large'];
  const fourteen = Array.from({ length: 14 }, (_, i) => `${prompts[i % prompts.length]} ${qualifiers[i % 7]} lung`);
  for (const [impl, m] of [
    ['carzero fp32', model32],
    ['carzero bf16', model16],
  ] as const) {
    const tt = await timeIt(async () => {
      using _e = await m.embedTexts(fourteen);
    }, reps);
    rows.push({
      what: 'BERT-base + aggregation (L=97)',
      impl,
      batch: 14,
      ms: median(tt),
      per_s: 14000 / median(tt),
      unit: 'texts/s',
    });
    const images = [
      'grey8_tall_quirk.png',
      'grey16_tall.png',
      'rgb_wide.png',
      'colour.jpg',
      'grey8_large.png',
      'grey8_wide_quirk.png',
      'palette.png',
      'rgb16.png',
    ].map((f) => join(root, 'images', f));
    using img = await m.embedImages(images);
    using txt = await m.embedTexts(fourteen);
    const th = await timeIt(() => m.score(img, txt), reps);
    rows.push({
      what: 'alignment head, both directions',
      impl,
      batch: 8 * 14,
      ms: median(th),
      per_s: (8 * 14 * 1000) / median(th),
      unit: 'pairs/s',
    });
    // classify end to end: decode + preprocess + ViT + head with prepared prompt embeddings
    const te = await timeIt(async () => {
      const prepared = await Promise.all(images.map((p) => m.prepareImage(p)));
      using e = await m.embedPrepared(prepared);
      await m.score(e, txt);
    }, reps);
    rows.push({
      what: 'classify end to end (14 classes)',
      impl,
      batch: 8,
      ms: median(te),
      per_s: 8000 / median(te),
      unit: 'images/s',
    });
  }
  model32.dispose();
  model16.dispose();
  fp32.dispose();
  bf16.dispose();
  return { rows, notes, root };
}
